"""`miniseries plan`: what a budget or a depth buys, before anything is trained."""

import argparse
import json

from miniseries.cli.common import add_preset_args, positive_float, preset_from_args
from miniseries.formatting import fmt_count

HELP = """\
Three ways to ask:
  miniseries plan --flops 1e18 --preset gpu [--ratio 8]   compute-optimal depth for a budget
  miniseries plan --depth 12 --ratio 8 --preset gpu       tokens/steps/FLOPs of one depth
  miniseries plan --depth 4 --flops 3e12                  one point of an isoFLOP profile
The ratio is tokens per parameter under --convention (total, kaplan = matrices + lm_head, or
matrices); every table says which one it uses."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plan",
        help="depth, params, tokens, steps and FLOPs for a budget or a depth",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--flops", type=positive_float, help="compute budget in FLOPs, e.g. 1e18")
    p.add_argument("--depth", type=int, help="model depth (the family's one integer)")
    p.add_argument("--ratio", type=positive_float, help="tokens:params ratio (preset default: 8)")
    p.add_argument("--steps", type=int, help="explicit number of optimizer steps (with --depth)")
    p.add_argument("--convention", help="params counted by the ratio: total | kaplan | matrices")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_preset_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.errors import UserError
    from miniseries.plan import plan_for_depth, plan_for_flops, plan_for_steps, plan_isoflop

    preset = preset_from_args(args)
    if args.depth is None and args.flops is None:
        raise UserError("give --flops, --depth, or both (see `miniseries plan --help`)")
    if args.steps is not None:
        if args.depth is None:
            raise UserError("--steps needs --depth")
        plan = plan_for_steps(args.depth, args.steps, preset, args.convention)
    elif args.depth is not None and args.flops is not None:
        plan = plan_isoflop(args.depth, args.flops, preset, args.convention)
    elif args.depth is not None:
        plan = plan_for_depth(args.depth, preset, args.ratio, args.convention)
    else:
        plan = plan_for_flops(args.flops, preset, args.ratio, args.convention)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print_plan_table([plan])
    return 0


def print_plan_table(plans: list, title: str | None = None) -> None:
    from rich.table import Table

    from miniseries.cli.common import console

    conv = plans[0].convention
    table = Table(title=title or f"plan ({plans[0].preset} preset)")
    for col in ("depth", "d_model", "heads", "N total", "N kaplan", "N matrices"):
        table.add_column(col, justify="right")
    for col in ("tokens", f"D/N ({conv})", "steps", "FLOPs"):
        table.add_column(col, justify="right")
    for p in plans:
        table.add_row(
            str(p.depth),
            str(p.d_model),
            str(p.n_heads),
            fmt_count(p.params_total),
            fmt_count(p.params_kaplan),
            fmt_count(p.params_matrices),
            fmt_count(p.tokens),
            f"{p.ratio:.2f}",
            str(p.steps),
            f"{p.flops:.3g}",
        )
    console().print(table)
