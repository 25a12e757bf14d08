"""Seed noise: the same run trained with several seeds (initialisation and data order), so that
the scatter of one run's outcome is measured, not assumed.

Prediction intervals (laws/outcome.py) estimate a run's scatter from the sweep itself (runs around
their budget's parabola), which mixes seed noise with how far a profile is from a parabola; a
measured seed noise is a floor under that estimate. Stored in the project's store as a fit of
kind ``seed_noise`` (newest wins), with the runs behind it.
"""

import math

import numpy as np

from miniseries.config import Preset
from miniseries.errors import UserError
from miniseries.paths import store_path
from miniseries.plan import plan_isoflop
from miniseries.store.db import open_store
from miniseries.study.runspec import RunSpec

FIT_KIND = "seed_noise"


def noise_specs(
    budget: float, depth: int, seeds: int, preset: Preset, data: str, tokenizer: str, **kw
) -> list[RunSpec]:
    """The run of ``depth`` on the isoFLOP profile of ``budget``, once per seed 0..seeds-1."""
    if seeds < 2:
        raise UserError(f"--seeds must be at least 2 to measure a spread, got {seeds}")
    overrides = kw.pop("overrides", {})
    plan = plan_isoflop(depth, budget, preset.with_overrides(**overrides))
    return [
        RunSpec(
            depth=depth,
            steps=plan.steps,
            data=data,
            tokenizer=tokenizer,
            preset=preset.name,
            overrides=dict(overrides),
            seed=s,
            kind="noise",
            study="noise",
            budget=budget,
            **kw,
        )  # fmt: skip
        for s in range(seeds)
    ]


def record_noise(project, specs: list[RunSpec], rows: list[dict]) -> dict:
    """The spread of val bpb over the finished seeds (sample sd, its degrees of freedom),
    stored as the project's seed noise; returns the record."""
    values = [r["val_bpb"] for r in rows if r.get("status") == "done" and r.get("val_bpb")]
    if len(values) < 2:
        raise UserError(f"only {len(values)} seed(s) finished: need 2 to measure a spread")
    record = {
        "preset": specs[0].preset,
        "budget": specs[0].budget,
        "depth": specs[0].depth,
        "seeds": [s.seed for s in specs],
        "runs": [r["run_id"] for r in rows],
        "val_bpb": values,
        "sd": float(np.std(values, ddof=1)),
        "dof": len(values) - 1,
    }
    with open_store(project) as store:
        store.add_fit(FIT_KIND, None, record)
    return record


def seed_noise(project) -> tuple[float, int] | None:
    """(sd, degrees of freedom) of the project's newest seed-noise measurement, or None."""
    if not store_path(project).exists():
        return None
    with open_store(project, create=False) as store:
        fit = store.latest_fit(FIT_KIND)
    if fit is None or not math.isfinite(fit["fit"].get("sd") or math.nan):
        return None
    return float(fit["fit"]["sd"]), int(fit["fit"]["dof"])
