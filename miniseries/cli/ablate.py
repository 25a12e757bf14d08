"""`miniseries ablate optimizer`: Muon against AdamW, each tuned, on the same isoFLOP design.

Each arm gets its own LR sweep (the design's first, middle and last depths, multipliers 1/16 to
4) and trains at its common optimum; both arms then train the same budgets and depths (each
budget's window centred on the preset ratio's N*). The two families are compared
(`miniseries compare`: a, b, the ratio under each convention, their differences, the effective
compute multiplier, with intervals), the report gets a comparison section, and
PROJECT/ablation.md says what the result does and does not say. Resumable: rerun to continue.

  miniseries ablate optimizer --project ablation --workers 2   (make ablation)
"""

import argparse

from miniseries.cli.common import float_list, nonneg_int, positive_int


def add_parser(sub) -> None:
    from miniseries.jobs.ablate import ARMS, AblationConfig

    d = AblationConfig()
    p = sub.add_parser(
        "ablate",
        help="an ablation as two tuned lines: train both, compare their scaling laws",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", choices=tuple(ARMS), help="what the two arms differ in")
    p.add_argument("--project", default=d.project, help=f"output folder (default {d.project})")
    p.add_argument("--workers", type=positive_int, default=d.workers, help="runs at once")
    p.add_argument("--budgets", type=float_list, help="isoFLOP budgets (default 2e11,3e11,4.5e11)")
    p.add_argument("--window", type=positive_int, default=d.window, help="depths per profile")
    p.add_argument("--lr-steps", type=positive_int, default=d.lr_steps, help="LR sweep horizon")
    p.add_argument("--bootstrap", type=nonneg_int, default=d.n_bootstrap, help="resamples")
    p.add_argument("--data", help="token shards folder (default: the offline corpus)")
    p.add_argument("--tokenizer", help="tokenizer folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.errors import UserError
    from miniseries.jobs.ablate import AblationConfig, run_ablation

    if args.budgets is not None and len(args.budgets) < 2:
        raise UserError("--budgets needs 2 or more budgets (power laws need 2), e.g. 2e11,3e11")
    if args.window < 3:
        raise UserError(f"--window must be at least 3 (a parabola needs 3), got {args.window}")
    d = AblationConfig()
    cfg = AblationConfig(
        project=args.project,
        workers=args.workers,
        budgets=tuple(args.budgets or d.budgets),
        window=args.window,
        lr_steps=args.lr_steps,
        n_bootstrap=args.bootstrap,
        data=args.data,
        tokenizer=args.tokenizer,
        progress=not args.quiet,
    )
    run_ablation(cfg, args.what)
    return 0
