"""The LR sweep: a few depths at a grid of LR multipliers for one fixed horizon, then the transfer
verdict (miniseries/laws/lr_transfer.py), stored in the project's store and drawn.

Which LRs a multiplier scales is the sweep's ``group``: all of them, the Muon (matrix) ones, or
the AdamW (embedding and lm_head) ones. The store's ``lr_mult`` column records the multiplier each
run was trained at, whatever its group.
"""

from dataclasses import dataclass
from pathlib import Path

from miniseries.config import LR_GROUPS, Preset
from miniseries.errors import UserError
from miniseries.laws.lr_transfer import Verdict, transfer_check
from miniseries.report.plots import plot_lr_sweep
from miniseries.store.db import open_store
from miniseries.study.runspec import RunSpec
from miniseries.study.sweep import execute

FIT_KIND = "lr_transfer"  # the store's kind for a transfer verdict


def default_depths(family: list[int]) -> list[int]:
    """Smallest, middle and largest depth of the preset's family."""
    return sorted({family[0], family[len(family) // 2], family[-1]})


def lr_sweep_specs(
    depths,
    steps: int,
    mults,
    group: str,
    preset: Preset,
    data: str,
    tokenizer: str,
    overrides: dict,
    optimizer: str = "muon",
) -> list[RunSpec]:
    """Every (depth, multiplier) run of the sweep, one evaluation each, at the end."""
    if steps < 1:
        raise UserError(f"--steps must be a positive integer, got {steps}")
    if len(mults) < 3:
        raise UserError("give at least 3 LR multipliers (e.g. 0.5,1,2) to locate an optimum")
    return [
        RunSpec(
            depth=d,
            steps=steps,
            data=data,
            tokenizer=tokenizer,
            preset=preset.name,
            overrides=dict(overrides),
            kind="lr_sweep",
            study=f"lr-sweep:{group}" + ("" if optimizer == "muon" else f":{optimizer}"),
            evals=1,
            optimizer=optimizer,
            **{LR_GROUPS[group]: m},
        )  # fmt: skip
        for d in depths
        for m in mults
    ]


@dataclass
class LRSweep:
    verdict: Verdict
    results: dict  # depth -> [(multiplier, val bpb), ...]
    plot: Path


def run_lr_sweep(
    specs: list[RunSpec], group: str, project, workers: int = 1, progress: bool = True
) -> LRSweep:
    """Train the specs, record each run's multiplier, store the verdict and draw the sweep."""
    rows = execute(specs, project, workers=workers, progress=progress)
    field = LR_GROUPS[group]
    results: dict[int, list] = {}
    with open_store(project) as store:
        for spec, row in zip(specs, rows):
            store.update_run(row["run_id"], lr_mult=getattr(spec, field))
            if row.get("val_bpb") is not None:
                results.setdefault(spec.depth, []).append((getattr(spec, field), row["val_bpb"]))
        verdict = transfer_check(results)
        record = {"group": group, "preset": specs[0].preset, "optimizer": specs[0].optimizer}
        record |= verdict.to_dict()
        store.add_fit(FIT_KIND, None, record)
    optima = {d: o["lr_mult"] for d, o in verdict.optima.items() if not o["flag"]}
    plot = plot_lr_sweep(results, optima, Path(project) / f"lr_sweep_{group}.png", "validation bpb")
    return LRSweep(verdict, results, plot)
