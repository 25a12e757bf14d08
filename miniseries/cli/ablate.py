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

options: what each recipe change is worth in compute (the "raise the line" ledger). Arms: the
baseline, each change (nanochat's 2026 changes by name: --changes, default all of them; or any
overridable preset field: --arm NAME:field=value,...), and all the named changes together, on one
rule-placed isoFLOP design; each arm's LR is checked at the middle cell and retuned if it moved.
Writes PROJECT/raise-the-line.md and .json (docs/raise-the-line.md). Plan with --dry-run.

  miniseries ablate options --project raise-the-line --workers 2   (make raise-the-line)
  miniseries ablate options --changes value_embeds,smear --arm wide:aspect_ratio=10 --dry-run
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
    p.add_argument("what", choices=(*ARMS, "recipe", "options"), help="what the arms differ in")
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
    p.add_argument(
        "--changes", help="options: named changes, comma-separated (default: all; --help lists)"
    )
    p.add_argument(
        "--arm", action="append", default=[], metavar="NAME:FIELD=VALUE,...",
        help="options: an extra arm of preset overrides (repeatable), e.g. wide:aspect_ratio=10",
    )  # fmt: skip
    p.add_argument(
        "--dry-run", action="store_true", help="recipe, options: list the runs, train nothing"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.errors import UserError
    from miniseries.jobs.ablate import AblationConfig, run_ablation

    if args.what == "recipe":
        return run_recipe(args)
    if args.what == "options":
        return run_options(args)
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


def design_args(args, d) -> dict:
    """The flags every one-design study takes (recipe, options), over its defaults ``d``."""
    return dict(
        project=args.project or d.project,
        workers=args.workers,
        budgets=tuple(args.budgets or d.budgets),
        window=d.window if args.window is None else args.window,
        n_bootstrap=d.n_bootstrap if args.bootstrap is None else args.bootstrap,
        data=args.data,
        tokenizer=args.tokenizer,
        progress=not args.quiet,
    )


def run_recipe(args) -> int:
    from miniseries.errors import UserError
    from miniseries.jobs.recipe_ablation import RecipeConfig, plan_text, run_recipe_ablation

    d = RecipeConfig()
    if args.budgets is not None and len(args.budgets) < 3:
        raise UserError("--budgets needs 3 or more budgets for the recipe ablation (gold uses 3)")
    cfg = RecipeConfig(**design_args(args, d))
    if args.dry_run:
        print(plan_text(cfg))
        return 0
    run_recipe_ablation(cfg)
    return 0


def parse_arm(text: str) -> tuple[str, dict]:
    """'NAME:field=value,field=value' -> (NAME, {field: value}); values read as YAML scalars."""
    import yaml

    from miniseries.errors import UserError

    name, sep, body = text.partition(":")
    pairs = [kv.partition("=") for kv in body.split(",") if kv]
    if not sep or not name or not pairs or any(not k or not eq for k, eq, _ in pairs):
        raise UserError(f"--arm wants NAME:field=value[,field=value], got {text!r}")
    return name, {k: yaml.safe_load(v) for k, _, v in pairs}


def run_options(args) -> int:
    from miniseries.errors import UserError
    from miniseries.jobs.raise_line import CHANGES, LedgerConfig, plan_text, run_ledger

    d = LedgerConfig()
    if args.budgets is not None and len(args.budgets) < 2:
        raise UserError("--budgets needs 2 or more budgets (power laws need 2), e.g. 2e11,6.3e11")
    changes = tuple(c for c in (args.changes or "").split(",") if c) if args.changes else d.changes
    unknown = sorted(set(changes) - set(CHANGES))
    if unknown:
        raise UserError(f"unknown change(s) {unknown}; choose from {', '.join(CHANGES)}")
    custom = dict(parse_arm(a) for a in args.arm)
    cfg = LedgerConfig(changes=changes, custom=custom, **design_args(args, d))
    if args.dry_run:
        print(plan_text(cfg))
        return 0
    run_ledger(cfg)
    return 0
