"""`miniseries validate`: would the fitted laws have predicted these runs' larger budgets? Rolling-
origin forward validation of every route (miniseries/laws/validate.py does the work; no torch)."""

import argparse
import json

from miniseries.cli.common import nonneg_int, positive_int

HELP = """\
Rolling-origin forward validation. The budgets whose isoFLOP parabola has a usable vertex are
sorted by compute; for each origin the laws are fitted (as `miniseries fit` fits them) on every
run up to the k-th of them, k = --min-fit-budgets .. m-1, and each larger budget's measured
vertex (L*, N*) is predicted by every route:
  isoflop (floored)        L* = E + k C^-gamma, E from the parametric (Huber) fit
  isoflop (power law)      the pure power law L* = k_L C^s
  isoflop, bias-corrected  the floored law, N* corrected for Approach 2's own bias
  parametric (huber)       the optimum of L(N, D) = E + A/N^alpha + B/D^beta, Huber on log loss
  parametric (squared)     the same under squared error
  product PI (mixture)     the interval `miniseries predict` stores (L* only)
Every interval is a prediction interval (PI) of the measured vertex, nominal 90%: the route's
bootstrap draws of L* plus the vertex's measurement noise. Per route: mean |relative error| of
L*, mean |log10 error| of N*, PI coverage and the mean interval score (Gneiting & Raftery 2007:
width plus 2/alpha times any miss; lower is better, and a wider interval never wins by being
wide). The best route for L* is the one with the lowest interval score; for N*, the lowest error.

Runs: a CSV in `miniseries fit`'s format (params, loss, tokens or flops, optional budget: runs
are grouped by the budget column when it is there), or --project DIR (its finished isoFLOP runs,
loss = val bpb). Nothing is written to the project.

  miniseries validate runs.csv
  miniseries validate --project demo --bootstrap 100 --plot validate.png
  miniseries validate chinchilla.csv --min-fit-budgets 4 --json"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="rolling-origin forward validation: would the laws have predicted the larger runs?",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="?", metavar="RUNS", help="CSV of runs (see above)")
    p.add_argument("--project", metavar="DIR", help="validate the isoFLOP runs of this project")
    p.add_argument(
        "--convention",
        default="total",
        help="which params N counts: total|kaplan|matrices|effective (= FLOPs per token / 6)",
    )
    p.add_argument(
        "--bootstrap",
        type=nonneg_int,
        default=200,
        metavar="B",
        help="bootstrap resamples per fit (default 200; 0: the PI is the noise alone)",
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--min-fit-budgets",
        type=positive_int,
        default=3,
        metavar="K",
        help="usable budgets in the first fit (default 3, at least 2)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--plot", metavar="PATH.png", help="write L* error vs decades past the data")
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.config import check_convention
    from miniseries.errors import UserError
    from miniseries.laws.base import runs_from_csv
    from miniseries.laws.validate import validate_runs

    check_convention(args.convention)
    if bool(args.runs) == bool(args.project):
        raise UserError("give either a CSV of runs or --project DIR (not both)")
    if args.project:
        from miniseries.store.db import open_store
        from miniseries.study.stored_fits import runs_from_store

        with open_store(args.project, create=False) as store:
            runs = runs_from_store(store, args.convention)
    else:
        runs = runs_from_csv(args.runs, args.convention)
    v = validate_runs(runs, args.convention, args.bootstrap, args.seed, args.min_fit_budgets)
    plot = None
    if args.plot:
        from miniseries.report.plots import plot_validation

        try:
            plot = plot_validation(v, args.plot)
        except OSError as e:
            raise UserError(
                f"cannot write the plot {args.plot} ({e.strerror or e}); give a writable .png path"
            ) from None
    if args.json:
        print(json.dumps(v.to_dict() | {"plot": str(plot) if plot else None}, indent=2))
        return 0
    _print(v, args.runs or args.project)
    if plot:
        print(f"wrote {plot}")
    return 0


def _print(v, source: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from miniseries.cli.common import console
    from miniseries.laws.validate import SUMMARY_HEADERS, format_summary

    title = (
        f"rolling-origin validation of {source}: {len(v.budgets)} usable budgets "
        f"({v.budgets[0]:.3g}–{v.budgets[-1]:.3g}), {len(v.origins)} origins, "
        f"{v.n_bootstrap} bootstrap resamples"
    )
    t = Table(title=escape(title))
    for i, h in enumerate(SUMMARY_HEADERS):
        t.add_column(h, justify="left" if i == 0 else "right")
    for row in format_summary(v):
        t.add_row(*(escape(c) for c in row))
    out = console()
    out.print(t)
    best = v.best
    print(f"intervals: {v.interval_statement}")
    print(f"best for L* (lowest interval score): {best['loss']}")
    print(f"best for N* (lowest mean |log10 error|): {best['n_opt']}")
    for note in v.notes:
        print(f"note: {note}")
