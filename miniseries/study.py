"""A project's results, read for the report and the demo: runs, curves, CORE tasks and
predictions from the store in one snapshot; the held-out prediction (fit the budgets below C,
predict C) and the measured optimum it is judged against. No torch.
"""

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from miniseries.errors import UserError
from miniseries.fits import runs_for_fit
from miniseries.laws.base import Prediction, Run
from miniseries.laws.isoflop import fit_isoflop, fit_vertex
from miniseries.paths import store_path

# The command that makes each kind of run (said in place of a section that has no data yet).
HINTS = {
    "isoflop": "miniseries sweep --project {p} --flops C1,C2,C3 --depths 1-6 --workers 2",
    "series": "miniseries series --project {p} --depths 1-5",
    "lr_sweep": "miniseries lr-sweep --project {p} --workers 2",
    "core": "miniseries series --project {p} --core 100",
    "one_knob": "miniseries run --project {p} --flops C",
}


# ---------------------------------------------------------------------------------------------
# Reading the store


@dataclass
class Study:
    """Everything the report reads, taken from the store in one snapshot."""

    project: Path
    runs: list = field(default_factory=list)
    curves: dict = field(default_factory=dict)  # run_id -> curve rows
    core_tasks: dict = field(default_factory=dict)  # run_id -> core_tasks rows
    predictions: list = field(default_factory=list)

    def done(self, kind: str) -> list[dict]:
        """Finished runs of a kind that have a validation bpb."""
        return [
            r
            for r in self.runs
            if r["kind"] == kind and r["status"] == "done" and r["val_bpb"] is not None
        ]

    def hint(self, kind: str) -> str:
        return f"not run yet: `{HINTS[kind].format(p=self.project)}`"


def load_study(project: str | os.PathLike) -> Study:
    """The store's runs, curves, CORE tasks and predictions (an absent store reads as empty)."""
    project = Path(project)
    if not project.is_dir():
        raise UserError(f"no project directory {project}; pass --project DIR (a sweep's folder)")
    study = Study(project)
    if not store_path(project).exists():
        return study
    from miniseries.store import open_store

    with open_store(project, create=False) as store, store.snapshot():
        study.runs = store.list_runs()
        for r in study.runs:
            study.curves[r["run_id"]] = store.curve(r["run_id"])
            study.core_tasks[r["run_id"]] = store.core_tasks(r["run_id"])
        study.predictions = store.predictions()
    return study


def default_convention(runs: list[dict]) -> str:
    """The convention the runs' preset counts its ratio in, else 'total'."""
    from miniseries.config import PRESETS

    for r in runs:
        preset = PRESETS.get(r.get("preset") or "")
        if preset is not None:
            return preset.convention
    return "total"


# ---------------------------------------------------------------------------------------------
# Held-out prediction


def held_out_prediction(
    runs, budget: float, convention: str = "total", n_bootstrap: int = 1000, seed: int = 0
) -> Prediction:
    """Fit the isoFLOP laws on the budgets below ``budget`` and predict its optimum.

    ``runs``: store rows (dicts) or laws Run objects. The result is what the demo stores, before
    training ``budget``, with ``add_prediction(run_id=f"budget:{budget:g}", ...)``; loss is in the
    runs' units (val bpb).
    """
    runs = runs_for_fit(runs, convention) if runs and isinstance(runs[0], dict) else list(runs)
    below = [r for r in runs if (r.budget if r.budget is not None else r.flops) < budget * 0.999]
    fit = fit_isoflop(below, convention, n_bootstrap, seed)
    if fit.n_law is None:
        usable = sum(v.usable for v in fit.vertices)
        raise UserError(
            f"held-out prediction at C={budget:.3g} needs 2 usable budgets below it, have "
            f"{usable}; sweep more (smaller) budgets first"
        )
    return fit.predict(budget)


def measured_optimum(runs: list[Run], budget: float, convention: str) -> dict | None:
    """Parabola vertex over the runs at ``budget``: the measured loss and N* there."""
    at = [r for r in runs if r.budget is not None and math.isclose(r.budget, budget, rel_tol=1e-3)]
    if len(at) < 3:
        return None
    v = fit_vertex(at, budget, convention)
    return {"loss": v.loss_opt, "n_opt": v.n_opt, "flags": v.flags, "n_runs": len(at)}
