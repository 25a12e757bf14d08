"""`miniseries demo`: the CPU miniseries end to end (what `make demo` runs)."""

import argparse

from miniseries.cli.common import (
    float_list,
    int_range,
    nonneg_int,
    positive_float,
    positive_int,
)
from miniseries.cli.dry_run import add_cost_args

HELP = """\
Build the offline data (once, cached), run an isoFLOP sweep, predict the held-out largest budget
from the smaller ones before training it, refit, train the miniseries at the fitted
tokens:params ratio, evaluate CORE-20, and write report.html + report.md into --project.
Rerunning reuses every finished run (kill it any time and run it again)."""


def add_parser(sub) -> None:
    from miniseries.jobs.demo import DemoConfig

    d = DemoConfig()
    p = sub.add_parser(
        "demo",
        help="the CPU miniseries end to end: sweep, held-out prediction, series, report",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--project", default=d.project, help=f"output folder (default {d.project})")
    p.add_argument(
        "--workers", type=positive_int, default=d.workers, help="runs at once (default 2)"
    )
    p.add_argument(
        "--budgets", type=float_list, help="fitted budgets (default 2e11,3.6e11,6.3e11,1.1e12)"
    )
    p.add_argument("--heldout", type=positive_float, help="held-out budget (default 2e12)")
    p.add_argument(
        "--window",
        type=positive_int,
        default=d.window,
        help="depths per isoFLOP profile (default 5), centred by a rule on the N* predicted from "
        "the smaller budgets (or the preset's ratio before there is a fit)",
    )
    p.add_argument("--series-depths", type=int_range, help="miniseries depths (default 1-5)")
    p.add_argument(
        "--core", type=positive_int, default=d.core_cap, help="CORE-20 examples per task"
    )
    p.add_argument("--no-core", action="store_true", help="skip CORE-20")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--no-compile",
        action="store_true",
        help="train every run eagerly (default: torch.compile the depths where it pays: a shape "
        "compiles once per machine, ~15 s, then loads from the cache in ~3 s; it pays when the "
        "step time it saves over the plan's runs of that depth is more; --dry-run lists them)",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile every run")
    p.add_argument(
        "--bootstrap", type=nonneg_int, default=d.n_bootstrap, help="bootstrap resamples"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print every run and the wall time it will take on this machine; train nothing",
    )
    add_cost_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.config import check_depth
    from miniseries.errors import UserError
    from miniseries.jobs.demo import DemoConfig, run_demo

    d = DemoConfig()
    for depth in args.series_depths or ():
        check_depth(depth)  # every mistake before the data build, which takes minutes
    if args.window < 3:
        raise UserError(
            f"--window must be at least 3 (a parabola needs 3 sizes), got {args.window}"
        )
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    cfg = DemoConfig(
        project=args.project,
        workers=args.workers,
        fit_budgets=tuple(args.budgets or d.fit_budgets),
        heldout_budget=args.heldout or d.heldout_budget,
        window=args.window,
        series_depths=tuple(args.series_depths or d.series_depths),
        core_cap=None if args.no_core else args.core,
        compile=False if args.no_compile else (True if args.compile else None),
        n_bootstrap=args.bootstrap,
        progress=not args.quiet,
    )
    if args.dry_run:
        from miniseries.cli.dry_run import demo_dry_run

        demo_dry_run(cfg, args)
        return 0
    run_demo(cfg)
    return 0
