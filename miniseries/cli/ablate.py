"""`miniseries ablate optimizer|recipe`: an ablation as tuned lines on one isoFLOP design.

optimizer: Muon against AdamW, each tuned, on the same isoFLOP design.

Each arm gets its own LR sweep (the design's first, middle and last depths, multipliers 1/16 to
4) and trains at its common optimum; both arms then train the same budgets and depths (each
budget's window centred on the preset ratio's N*). The two families are compared
(`miniseries compare`: a, b, the ratio under each convention, their differences, the effective
compute multiplier, with intervals), the report gets a comparison section, and
PROJECT/ablation.md says what the result does and does not say. Resumable: rerun to continue.

  miniseries ablate optimizer --project ablation --workers 2   (make ablation)

recipe: is the cpu family's law the models' or the recipe's? One arm per recipe factor (seed,
Muon's momentum ramp, the warm-down, the batch, the LR's horizon) on the demo's four fit budgets,
a gold standard tuned per (depth, budget) cell, an LR rule fitted on it and checked on cells it
was not fitted on, seed noise; the protocol and the decision rule are docs/recipe-ablation.md.
Writes PROJECT/recipe-ablation.md and .json. About 200 runs: plan with --dry-run.

  miniseries ablate recipe --project recipe --workers 2   (make recipe-ablation)
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
    p.add_argument("what", choices=(*ARMS, "recipe"), help="what the arms differ in")
    p.add_argument("--project", help="output folder (default: ablation, or recipe)")
    p.add_argument("--workers", type=positive_int, default=d.workers, help="runs at once")
    p.add_argument("--budgets", type=float_list, help="isoFLOP budgets (default 2e11,3e11,4.5e11)")
    p.add_argument(
        "--window", type=positive_int, help=f"depths per profile (default {d.window}; recipe 5)"
    )
    p.add_argument("--lr-steps", type=positive_int, default=d.lr_steps, help="LR sweep horizon")
    p.add_argument(
        "--bootstrap", type=nonneg_int, help=f"resamples (default {d.n_bootstrap}; recipe 400)"
    )
    p.add_argument("--data", help="token shards folder (default: the offline corpus)")
    p.add_argument("--tokenizer", help="tokenizer folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="recipe: list the runs, train nothing")
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.errors import UserError
    from miniseries.jobs.ablate import AblationConfig, run_ablation

    if args.what == "recipe":
        return run_recipe(args)
    if args.budgets is not None and len(args.budgets) < 2:
        raise UserError("--budgets needs 2 or more budgets (power laws need 2), e.g. 2e11,3e11")
    d = AblationConfig()
    args.window = d.window if args.window is None else args.window
    args.bootstrap = d.n_bootstrap if args.bootstrap is None else args.bootstrap
    if args.window < 3:
        raise UserError(f"--window must be at least 3 (a parabola needs 3), got {args.window}")
    cfg = AblationConfig(
        project=args.project or d.project,
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


def run_recipe(args) -> int:
    from miniseries.errors import UserError
    from miniseries.jobs.recipe_ablation import RecipeConfig, plan_text, run_recipe_ablation

    d = RecipeConfig()
    if args.budgets is not None and len(args.budgets) < 3:
        raise UserError("--budgets needs 3 or more budgets for the recipe ablation (gold uses 3)")
    cfg = RecipeConfig(
        project=args.project or d.project,
        workers=args.workers,
        budgets=tuple(args.budgets or d.budgets),
        window=d.window if args.window is None else args.window,
        n_bootstrap=d.n_bootstrap if args.bootstrap is None else args.bootstrap,
        data=args.data,
        tokenizer=args.tokenizer,
        progress=not args.quiet,
    )
    if args.dry_run:
        print(plan_text(cfg))
        return 0
    run_recipe_ablation(cfg)
    return 0
