"""`miniseries noise --flops C --depth D --seeds 3`: measure how much one run scatters by seed.

Trains the same run (depth D on the isoFLOP profile of C) with seeds 0..K-1 and stores the sample
standard deviation of its validation bpb in the project. Prediction intervals (`run`, `predict`,
the demo, the report) then use it as the floor of a run's scatter; without it they estimate the
scatter from the sweep's runs around their parabolas.

  miniseries noise --flops 3e11 --depth 3 --seeds 3 --workers 2
"""

import argparse

from miniseries.cli.common import positive_float, positive_int
from miniseries.cli.sweep import add_exec_args, add_run_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "noise",
        help="train one run with several seeds; store its seed noise for prediction intervals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--flops", type=positive_float, required=True, metavar="C", help="budget")
    p.add_argument("--depth", type=positive_int, required=True, help="the depth to repeat")
    p.add_argument("--seeds", type=positive_int, default=3, help="how many seeds (default 3)")
    add_run_args(p)
    add_exec_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.cli.sweep import execute_from_args, print_results, spec_kwargs
    from miniseries.config import check_depth
    from miniseries.study.seed_noise import noise_specs, record_noise

    check_depth(args.depth)
    kw = spec_kwargs(args)
    kw.pop("study", None)
    kw.pop("seed", None)
    specs = noise_specs(args.flops, args.depth, args.seeds, **kw)
    print(f"seed noise: d{args.depth} at C = {args.flops:.3g}, seeds 0-{args.seeds - 1}")
    rows = execute_from_args(args, specs)
    if rows is None:
        return 0
    code = print_results(rows)
    rec = record_noise(args.project, specs, rows)
    print(
        f"val bpb sd over {rec['dof'] + 1} seeds: {rec['sd']:.4f} (stored for prediction intervals)"
    )
    return code
