"""A project's results, read for the report and the demo: runs, curves, CORE tasks and
predictions from the store in one snapshot; the held-out prediction (fit the budgets below C,
predict C) and the measured optimum it is judged against. No torch.
"""

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from miniseries.accounting import param_counts
from miniseries.config import model_config
from miniseries.errors import UserError
from miniseries.laws.base import Prediction, Run
from miniseries.laws.isoflop import fit_vertex
from miniseries.paths import store_path
from miniseries.study.stored_fits import WINDOW, depth_window, predict_at, runs_for_fit

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
    from miniseries.store.db import open_store

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
    runs,
    budget: float,
    convention: str = "total",
    n_bootstrap: int = 1000,
    seed: int = 0,
    preset=None,
    window_params: list[float] | None = None,
    window: int = WINDOW,
    noise: tuple[float, int] | None = None,
) -> Prediction:
    """Fit the laws on the budgets below ``budget`` and predict its optimum.

    What will be measured there is the parabola vertex over a window of sizes: with a ``preset``
    the window is the rule's (``stored_fits.depth_window`` around the predicted N*, recorded in the
    prediction's plan), or ``window_params`` give its sizes; either way the prediction carries the
    prediction interval of that vertex. ``runs``: store rows (dicts) or laws Run objects. The demo
    stores the result before training ``budget`` (``add_prediction("budget:C", ...)``).
    """
    runs = runs_for_fit(runs, convention) if runs and isinstance(runs[0], dict) else list(runs)
    below = [r for r in runs if (r.budget if r.budget is not None else r.flops) < budget * 0.999]
    law_only = predict_at(below, budget, convention, None, n_bootstrap, seed)
    plan = None
    if window_params is None and preset is not None:
        depths = depth_window(law_only.n_opt.point, preset, convention, window)
        window_params = [
            param_counts(model_config(d, preset)).by_convention(convention) for d in depths
        ]
        plan = {"depths": depths, "params": window_params, "convention": convention}
    if not window_params:
        return law_only
    pred = predict_at(below, budget, convention, list(window_params), n_bootstrap, seed, noise)
    return replace(pred, plan=plan)


def predict_budget(
    project, budget: float, preset, convention: str | None = None, n_bootstrap: int = 1000
) -> tuple[dict, bool]:
    """Store a prediction for ``budget`` from the project's finished isoFLOP runs below it: N*,
    D*, the law's L* with its CI, and the PI of the vertex the rule's window of depths will
    measure. Returns (the stored row, whether any run at that budget had already started — then
    the prediction is not blind, and says so). A new prediction never replaces an older one."""
    from miniseries.store.db import open_store
    from miniseries.study.seed_noise import seed_noise

    key = f"budget:{budget:g}"
    with open_store(project, create=False) as store:  # nothing to predict from: say so, make none
        rows = store.list_runs(kind="isoflop")
        conv = convention or default_convention(rows)
        done = [r for r in rows if r["status"] == "done"]
        noise = seed_noise(project)
        pred = held_out_prediction(done, budget, conv, n_bootstrap, preset=preset, noise=noise)
        started = [r for r in rows if r["budget"] == budget and r.get("started_at")]
        pid = store.add_prediction(key, pred.to_dict())
        row = next(p for p in store.predictions(key) if p["prediction_id"] == pid)
    return row, bool(started)


def blind_check(stored: dict, judged_runs: list[dict]) -> tuple[bool | None, str]:
    """Was the stored prediction made before every run it is judged on first started?
    (True: blind; False: NOT blind, a run started first; None: no judged run has started.)"""
    pid, made = stored["prediction_id"], stored["created_at"]
    starts = [r["started_at"] for r in judged_runs if r.get("started_at")]
    if not starts:
        return None, f"prediction #{pid} stored {made}; none of the runs it predicts has started"
    first = min(starts)
    ok = made < first
    when = "before" if ok else "AFTER"
    verdict = "blind" if ok else "NOT BLIND: a judged run had started before it was made"
    return (
        ok,
        f"prediction #{pid} stored {made}, {when} the first judged run started ({first}): "
        f"{verdict}",
    )


def measured_optimum(runs: list[Run], budget: float, convention: str) -> dict | None:
    """Parabola vertex over the runs at ``budget``: the measured loss and N* there."""
    at = [r for r in runs if r.budget is not None and math.isclose(r.budget, budget, rel_tol=1e-3)]
    if len(at) < 3:
        return None
    v = fit_vertex(at, budget, convention)
    return {"loss": v.loss_opt, "n_opt": v.n_opt, "flags": v.flags, "n_runs": len(at)}
