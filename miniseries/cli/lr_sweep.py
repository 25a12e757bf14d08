"""`miniseries lr-sweep`: does one learning rate serve the whole family?

Trains a few depths (smallest, middle, largest by default) for a fixed short horizon at a grid of
LR multipliers, finds each depth's optimum (parabola in log2 LR), and says whether the common
multiplier costs any depth more than 0.5% of its loss (miniseries/laws/lr_transfer.py says why that
tolerance). An LR that is right for small models and wrong for big ones bends isoFLOP profiles
and fakes an optimum: run this before trusting a sweep.
"""

import argparse

from miniseries.cli.common import add_preset_args, float_list, int_range
from miniseries.config import LR_GROUPS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "lr-sweep",
        help="LR sweep over a few depths: is the optimum flat across the family?",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--depths", type=int_range, help="depths to sweep (default: min, mid, max)")
    p.add_argument("--steps", type=int, default=300, help="fixed horizon per run (default 300)")
    p.add_argument(
        "--mults", type=float_list, default=[0.25, 0.5, 1.0, 2.0, 4.0], help="LR multipliers"
    )
    p.add_argument(
        "--group",
        choices=tuple(LR_GROUPS),
        default="all",
        help="which LRs the multiplier scales: all, matrix (Muon) or adam (embeddings)",
    )
    p.add_argument(
        "--optimizer",
        choices=("muon", "adamw"),
        default="muon",
        help="the optimizer to tune (each arm of an optimizer ablation gets its own LR sweep)",
    )
    p.add_argument("--project", default=".", help="project folder (results store, report)")
    p.add_argument("--workers", type=int, default=1, help="runs at once")
    p.add_argument("--data", help="token shards folder (default: the offline corpus)")
    p.add_argument("--tokenizer", help="tokenizer folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_preset_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.cli.common import preset_from_args, preset_overrides
    from miniseries.config import get_preset
    from miniseries.data.defaults import resolve_data
    from miniseries.jobs.lr_sweep import default_depths, lr_sweep_specs, run_lr_sweep

    preset = preset_from_args(args)
    depths = args.depths or default_depths(preset.depths)
    data, tokenizer = resolve_data(args.data, args.tokenizer, preset.vocab_size)
    specs = lr_sweep_specs(
        depths, args.steps, args.mults, args.group, get_preset(args.preset), str(data),
        str(tokenizer), preset_overrides(args), optimizer=args.optimizer,
    )  # fmt: skip
    sweep = run_lr_sweep(specs, args.group, args.project, args.workers, not args.quiet)
    _print_table(sweep.verdict, args.group)
    print(sweep.verdict.summary())
    print(f"plot: {sweep.plot}")
    return 0


def _print_table(verdict, group: str) -> None:
    from rich.table import Table

    from miniseries.cli.common import console

    table = Table(title=f"LR sweep ({group} LRs): optimum per depth")
    for col in ("depth", "best multiplier", "bpb at best", "penalty at common LR", "flag"):
        table.add_column(col, justify="right" if col != "flag" else "left")
    for depth, o in sorted(verdict.optima.items()):
        pen = verdict.penalties.get(depth)
        table.add_row(
            str(depth),
            f"{o['lr_mult']:.3g}",
            f"{o['loss']:.4f}",
            "-" if pen is None else f"{100 * pen:.2f}%",
            o["flag"] or "",
        )
    console().print(table)
