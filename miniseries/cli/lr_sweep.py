"""`miniseries lr-sweep`: does one learning rate serve the whole family?

Trains a few depths (smallest, middle, largest by default) for a fixed short horizon at a grid of
LR multipliers, finds each depth's optimum (parabola in log2 LR), and says whether the common
multiplier costs any depth more than 0.5% of its loss (miniseries/transfer.py says why that
tolerance). An LR that is right for small models and wrong for big ones bends isoFLOP profiles
and fakes an optimum: run this before trusting a sweep.
"""

import argparse

from miniseries.cli.common import add_preset_args, float_list, int_range

GROUPS = {"all": "lr_mult", "matrix": "matrix_lr_mult", "adam": "adam_lr_mult"}


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
        choices=tuple(GROUPS),
        default="all",
        help="which LRs the multiplier scales: all, matrix (Muon) or adam (embeddings)",
    )
    p.add_argument("--project", default=".", help="project folder (results store, report)")
    p.add_argument("--workers", type=int, default=1, help="runs at once")
    p.add_argument("--data", help="token shards folder (default: the offline corpus)")
    p.add_argument("--tokenizer", help="tokenizer folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_preset_args(p)
    p.set_defaults(run=run)


def lr_sweep_specs(depths, steps, mults, group, preset, data, tokenizer, overrides) -> list:
    from miniseries.sweep import RunSpec

    study = f"lr-sweep:{group}"
    return [
        RunSpec(
            depth=d,
            steps=steps,
            data=data,
            tokenizer=tokenizer,
            preset=preset,
            overrides=dict(overrides),
            kind="lr_sweep",
            study=study,
            evals=1,
            **{GROUPS[group]: m},
        )  # fmt: skip
        for d in depths
        for m in mults
    ]


def run(args) -> int:
    from pathlib import Path

    from miniseries.cli.common import preset_from_args, preset_overrides
    from miniseries.data.defaults import resolve_data
    from miniseries.errors import UserError
    from miniseries.plots import plot_lr_sweep
    from miniseries.store import open_store
    from miniseries.sweep import execute
    from miniseries.transfer import transfer_check

    preset = preset_from_args(args)
    if args.steps < 1:
        raise UserError(f"--steps must be a positive integer, got {args.steps}")
    if len(args.mults) < 3:
        raise UserError("give at least 3 LR multipliers (e.g. 0.5,1,2) to locate an optimum")
    family = preset.depths
    depths = args.depths or sorted({family[0], family[len(family) // 2], family[-1]})
    data, tokenizer = resolve_data(args.data, args.tokenizer, preset.vocab_size)
    specs = lr_sweep_specs(
        depths, args.steps, args.mults, args.group, preset.name, str(data), str(tokenizer),
        preset_overrides(args),
    )  # fmt: skip
    rows = execute(specs, args.project, workers=args.workers, progress=not args.quiet)
    with open_store(args.project) as store:
        for spec, row in zip(specs, rows):  # the column records the multiplier that was swept
            store.update_run(row["run_id"], lr_mult=getattr(spec, GROUPS[args.group]))
        results: dict[int, list] = {}
        for spec, row in zip(specs, rows):
            if row.get("val_bpb") is not None:
                results.setdefault(spec.depth, []).append(
                    (getattr(spec, GROUPS[args.group]), row["val_bpb"])
                )
        verdict = transfer_check(results)
        store.add_fit("lr_transfer", preset.name, {"group": args.group, **verdict.to_dict()})
    optima = {d: o["lr_mult"] for d, o in verdict.optima.items() if not o["flag"]}
    plot = plot_lr_sweep(
        results, optima, Path(args.project) / f"lr_sweep_{args.group}.png", "validation bpb"
    )
    _print_table(verdict, args.group)
    print(verdict.summary())
    print(f"plot: {plot}")
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
