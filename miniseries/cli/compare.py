"""`miniseries compare A B`: two families (lines) fitted side by side, and by how much one beats
the other, with intervals (miniseries/laws/compare.py does the work; no torch)."""

import argparse
import json

from miniseries.cli.common import nonneg_int

HELP = """\
Fits the isoFLOP laws of two lines, A and B, each with its own bootstrap, and says how they
differ: a, b (N* ∝ C^a, D* ∝ C^b), D*/N* and L* at a common budget (the geometric middle of the
overlap of the two lines' budget ranges), the differences B − A (ratios as B/A), and the
effective compute multiplier m(C): the compute B needs to reach A's optimal loss at C, over C
(m < 1: B is better), at every budget of the overlap. Every interval is a bootstrap 90%
confidence interval (CI) of the fitted laws; differences pair resample i of A with resample i
of B. It also says whether the L* lines cross inside the overlap.

What A and B name (the rule, in this order):
  a path ending in .csv     a runs CSV in `miniseries fit`'s format (params counted by
                            --convention)
  a folder with miniseries.db
                            a project: all its finished isoFLOP runs
  anything else             a study in --project P: its finished isoFLOP runs of that study
Store inputs also give D*/N* under every params convention their runs have, the run settings
that differ between the lines (e.g. optimizer: muon -> adamw), and a note on each arm whose
LRs were never tuned (no `miniseries lr-sweep` for its optimizer).

  miniseries compare baseline adamw --project runs/
  miniseries compare projA projB --plot compare.png
  miniseries compare a.csv b.csv --convention kaplan --json"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two families' fitted laws: by how much one beats the other",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A", help="line A: a .csv, a project folder, or a study name")
    p.add_argument("b", metavar="B", help="line B: the same kinds as A")
    p.add_argument("--project", metavar="DIR", help="the project whose studies A and B name")
    p.add_argument(
        "--convention",
        default="total",
        help="which params N counts: total|kaplan|matrices (a CSV's column params_<convention> "
        "or params; default total)",
    )
    p.add_argument(
        "--bootstrap", type=int, default=1000, metavar="B", help="resamples per line (0: none)"
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--plot", metavar="PATH", help="write the two lines' L*(C) and N*(C) here")
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.config import check_convention
    from miniseries.errors import UserError
    from miniseries.laws.compare import format_comparison
    from miniseries.study.compare_sides import compare_inputs

    check_convention(args.convention)
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0 (0 skips intervals), got {args.bootstrap}")
    c = compare_inputs(args.a, args.b, args.project, args.convention, args.bootstrap, args.seed)
    plot = None
    if args.plot:
        from miniseries.report.plots import plot_compare

        try:
            plot = plot_compare(c, args.plot)
        except OSError as e:
            raise UserError(
                f"cannot write the plot {args.plot} ({e.strerror or e}); give a writable .png path"
            ) from None
    if args.json:
        print(json.dumps(c.to_dict() | {"plot": str(plot) if plot else None}, indent=2))
        return 0
    print(format_comparison(c))
    if plot:
        print(f"wrote {plot}")
    return 0
