"""`miniseries series`: the miniseries - each depth trained to ratio x params tokens."""

import argparse

from miniseries.cli.common import int_range, positive_float
from miniseries.cli.dry_run import add_cost_args
from miniseries.cli.sweep import add_exec_args, add_run_args

HELP = """\
Train each depth for ratio x params tokens (params counted by --convention). Its validation
curves should be clean, parallel and never cross; `miniseries fit`/`report` check that.

--ratio defaults to D*/N* of the latest isoFLOP fit in the project's store (`miniseries fit
--project`), saying so, and else to the preset's ratio. Parallel and resumable like `sweep`.

  miniseries series --depths 1-6 --ratio 8 --preset cpu --workers 2
  miniseries series --depths 10-20 --preset gpu --workers 8 --core"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "series",
        help="the miniseries: each depth to ratio x params tokens (parallel, resumable)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--depths", type=int_range, help="e.g. 1-6 (default: the preset's)")
    p.add_argument("--ratio", type=positive_float, help="tokens:params (default: see above)")
    add_run_args(p)
    add_exec_args(p)
    add_cost_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.cli.dry_run import show_dry_run, show_plan
    from miniseries.cli.sweep import execute_from_args, print_results, spec_kwargs
    from miniseries.config import get_preset
    from miniseries.laws.base import n_label
    from miniseries.study.runspec import series_specs
    from miniseries.study.stored_fits import default_ratio

    ratio, conv = args.ratio, args.convention
    if ratio is None:
        ratio, conv, source = default_ratio(args.project, args.convention, get_preset(args.preset))
        print(f"ratio {ratio:.3g} tokens per {n_label(conv)}: {source}")
    kw = spec_kwargs(args) | {"convention": conv}
    depths = args.depths or list(get_preset(args.preset).depths)
    specs = series_specs(depths, ratio, **kw)
    title = f"miniseries at ratio {ratio:.3g}: {len(specs)} runs -> {args.project}"
    if args.dry_run:
        show_dry_run(specs, args, title, args.workers, args.nproc * args.nodes)
        return 0
    show_plan(specs, title)
    rows = execute_from_args(args, specs)
    return 0 if rows is None else print_results(rows)
