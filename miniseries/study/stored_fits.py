"""Scaling-law fits kept in a project's store: what is saved of one, the latest one, and what it
predicts — the ratio the miniseries trains at and the one-knob plan for a budget (N*, depth,
tokens, expected loss with its interval). Torch-free; `miniseries fit`, `series` and `run` call
these, and so does the demo.
"""

import math
from dataclasses import asdict, replace

from miniseries.accounting import param_counts
from miniseries.config import MAX_DEPTH, Preset, check_convention, model_config
from miniseries.errors import UserError
from miniseries.laws.approach2_bias import approach2_bias
from miniseries.laws.base import LEVEL, Interval, Prediction, Run, group_budgets, n_label
from miniseries.laws.isoflop import fit_isoflop
from miniseries.laws.outcome import outcome_interval
from miniseries.laws.parametric import fit_parametric, natural
from miniseries.paths import store_path
from miniseries.plan import Plan, plan_for_flops, plan_isoflop
from miniseries.store.db import open_store

FIT_KIND = "isoflop_laws"  # the store's kind for a saved isoFLOP + parametric fit
WINDOW = 5  # depths an isoFLOP profile samples around a predicted optimum


def runs_for_fit(rows: list[dict], convention: str = "total") -> list[Run]:
    """Store rows -> laws Run with params under ``convention`` and loss = val bpb (rows without
    params, tokens or a val bpb are skipped). The one rule `fit --project`, the report and the
    demo all fit by."""
    check_convention(convention)
    out = []
    for r in rows:
        n = r.get(f"params_{convention}")
        if convention == "effective" and r.get("flops") and r.get("tokens"):
            n = r["flops"] / (6.0 * r["tokens"])  # FLOPs per token / 6
        if not n or r.get("val_bpb") is None or not r.get("tokens"):
            continue
        flops = r.get("flops") or 6.0 * n * r["tokens"]
        out.append(
            Run(
                float(n),
                float(r["tokens"]),
                float(flops),
                float(r["val_bpb"]),
                budget=r.get("budget"),
                depth=r.get("depth"),
                name=r.get("run_id"),
            )
        )
    return out


def runs_from_store(store, convention: str = "total") -> list[Run]:
    """The store's finished isoFLOP runs, by ``runs_for_fit``."""
    runs = runs_for_fit(store.list_runs(kind="isoflop", status="done"), convention)
    if not runs:
        raise UserError(f"no finished isoFLOP runs in {store.path}; run `miniseries sweep` first")
    return runs


def fit_record(laws, runs, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """What the store keeps of a fit: its results, plus the runs and seed it came from, so that
    predictions with intervals can be remade exactly (``predict_from_record``)."""
    return laws.to_dict() | {
        "runs": [asdict(r) for r in runs],
        "n_bootstrap": n_bootstrap,
        "seed": seed,
    }


def fit_for_prediction(runs: list[Run], convention: str, n_bootstrap: int, seed: int):
    """(isoFLOP fit, parametric fit or None) as every stored prediction makes them: the
    parametric law (Huber) when there are 6 runs over 2+ budgets, and the isoFLOP fit with
    its L*(C) floored at that law's E, so that nothing is predicted below the irreducible loss."""
    par = None
    if len(runs) >= 6 and len(group_budgets(runs)) >= 2:
        par = fit_parametric(runs, convention, n_bootstrap, seed)
    floor = (par.E, natural(par.samples)[2]) if par is not None else None
    return fit_isoflop(runs, convention, n_bootstrap, seed, floor=floor), par


def predict_from_record(record: dict, budget: float) -> Prediction:
    """The isoFLOP prediction (N*, D*, loss with confidence intervals) of a stored fit at a budget.

    Refits the stored runs with the stored seed (the same fit, with its bootstrap samples); a
    record without runs predicts from its power laws alone (intervals NaN)."""
    conv = record["convention"]
    if record.get("runs"):
        runs = [Run(**r) for r in record["runs"]]
        iso, _ = fit_for_prediction(
            runs, conv, record.get("n_bootstrap", 1000), record.get("seed", 0)
        )
        return iso.predict(budget)
    iso = record.get("isoflop") or {}
    if not iso.get("n_law"):
        raise UserError("the stored isoFLOP fit has no power laws (fewer than 2 usable budgets)")
    law = {k: iso[f"{k}_law"] for k in ("n", "d", "loss")}
    value = {k: v["k"] * budget ** v["exponent"] for k, v in law.items()}
    iv = {k: Interval(v, math.nan, math.nan) for k, v in value.items()}
    return Prediction(budget, iv["n"], iv["d"], iv["loss"], "isoflop", conv)


def nearest_depth(n_opt: float, preset, convention: str) -> int:
    """The family's depth whose params (counted by ``convention``) are nearest N* in log."""

    def distance(d):
        return abs(
            math.log(param_counts(model_config(d, preset)).by_convention(convention) / n_opt)
        )

    return min(range(1, MAX_DEPTH + 1), key=distance)


def depth_window(n_opt: float, preset, convention: str, width: int = WINDOW) -> list[int]:
    """The depths an isoFLOP profile samples around a predicted N*: ``width`` consecutive
    depths centred on the nearest one (shifted inwards at either end of the family), so that a
    vertex near the prediction has two or more sampled depths on each side. The rule every demo
    window and the held-out window come from: nothing is picked by hand after seeing an outcome."""
    centre = nearest_depth(n_opt, preset, convention)
    first = min(max(1, centre - width // 2), max(1, MAX_DEPTH - width + 1))
    return list(range(first, min(first + width, MAX_DEPTH + 1)))


def planned_n_opt(runs: list[Run], budget: float, preset, convention: str) -> tuple[float, str]:
    """(N*, where it came from) for a budget about to be swept: the isoFLOP fit of the budgets
    below it when it has power laws, else the preset's tokens:params ratio."""
    below = [r for r in runs if (r.budget or r.flops) < budget * 0.999]
    fit = fit_isoflop(below, convention, n_bootstrap=0) if below else None
    if fit is not None and fit.n_law is not None:
        return float(fit.n_law(budget)), "isoFLOP fit of the smaller budgets"
    plan = plan_for_flops(budget, preset, None, convention)
    return float(plan.params()), f"the {preset.name} preset's ratio {preset.ratio:g}"


def predict_at(
    runs: list[Run],
    budget: float,
    convention: str = "total",
    measured_params: list[float] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    noise: tuple[float, int] | None = None,
) -> Prediction:
    """Fit the laws on ``runs`` and predict ``budget``: N*, D* and L* with the confidence
    intervals of the fitted law, and — when what will be measured is known (one run's size, or
    the sizes whose parabola vertex will be measured) — the prediction interval for that
    measurement (laws/outcome.py). Records which runs the fit used and its settings."""
    fit, par = fit_for_prediction(runs, convention, n_bootstrap, seed)
    if fit.n_law is None:
        usable = sum(v.usable for v in fit.vertices)
        raise UserError(
            f"a prediction at C={budget:.3g} needs 2 usable isoFLOP budgets, have {usable}; "
            "sweep more budgets first"
        )
    pred = fit.predict(budget)
    settings = {"n_bootstrap": n_bootstrap, "seed": seed, "level": LEVEL}
    pred = replace(
        pred,
        fit_runs=tuple(r.name for r in runs if r.name),
        fit_settings=settings,
        alternatives=alternatives(fit, par, runs, budget, n_bootstrap, seed),
    )
    if not measured_params:
        return pred
    outcome, parts = outcome_interval(
        fit, runs, budget, measured_params, par, seed=seed, noise_floor=noise
    )
    return replace(pred, outcome=outcome, outcome_parts=parts)


def alternatives(fit, par, runs, budget, n_bootstrap, seed) -> tuple[Prediction, ...]:
    """What the other routes and forms predict at ``budget``: the pure power-law L* (beside the
    floored one), the Approach-2-bias-corrected allocation, and the parametric law under both
    objectives. Stored with the prediction, so that every one is as blind as it."""
    out = [fit.predict_form(budget, not fit.floored)] if fit.floor_law is not None else []
    if par is not None:
        bias = approach2_bias(fit, par, runs)
        if bias is not None:
            out.append(bias.corrected(fit.predict(budget)))
        squared = fit_parametric(runs, fit.convention, n_bootstrap, seed, objective="squared")
        out += [par.predict(budget), squared.predict(budget)]
    return tuple(out)


def latest_fit(project, convention: str | None = None) -> dict | None:
    """The newest isoFLOP fit in a project's store (of that convention, if given), or None."""
    if not store_path(project).exists():
        return None
    with open_store(project, create=False) as store:
        return store.latest_fit(FIT_KIND, convention)


def default_ratio(project, convention: str | None, preset: Preset) -> tuple[float, str | None, str]:
    """(ratio, convention, where it came from) when no ratio is given: D*/N* of the latest stored
    fit, else the preset's ratio."""
    fit = latest_fit(project, convention)
    if fit is not None:
        ratio = (fit["fit"].get("isoflop") or {}).get("ratio")
        if ratio is not None and math.isfinite(ratio):
            conv = fit["fit"]["convention"]
            return ratio, conv, f"D*/N* of isoFLOP fit #{fit['fit_id']} ({fit['created_at']})"
    conv = convention or preset.convention
    return preset.ratio, conv, f"the {preset.name} preset's default (no isoFLOP fit in the store)"


def plan_one_knob(
    flops: float,
    preset,
    fit: dict | None,
    convention: str | None = None,
    noise: tuple[float, int] | None = None,
) -> tuple[Plan, Prediction, str]:
    """(plan, prediction, one-line explanation) for a budget, from a stored fit or not."""
    unusable = fit is not None and not (fit["fit"].get("isoflop") or {}).get("n_law")
    if fit is None or unusable:
        plan = plan_for_flops(flops, preset, None, convention)
        why = (
            "no isoFLOP fit in the store"
            if fit is None
            else (f"isoFLOP fit #{fit['fit_id']} has no power laws (under 2 usable budgets)")
        )
        why += (
            f": using the {preset.name} preset's ratio {preset.ratio:g} tokens per "
            f"{n_label(plan.convention)}"
        )
        pred = Prediction(
            flops, None, None, None, "preset_ratio", plan.convention, ratio=preset.ratio
        )
        return plan, replace(pred, plan=plan_fields(plan)), why
    record = fit["fit"]
    conv = record["convention"]
    p = predict_from_record(record, flops)
    depth = nearest_depth(p.n_opt.point, preset, conv)
    plan = plan_isoflop(depth, flops, preset, conv)
    if record.get("runs"):  # the stored runs: the prediction interval of this one run
        runs = [Run(**r) for r in record["runs"]]
        n_boot, seed = record.get("n_bootstrap", 1000), record.get("seed", 0)
        p = predict_at(runs, flops, conv, [plan.params()], n_boot, seed, noise)
    why = f"isoFLOP fit #{fit['fit_id']} ({fit['created_at']}): N*(C) = {p.n_opt.point:.3g}"
    why += f" {n_label(conv)}"
    return plan, replace(p, fit_id=fit["fit_id"], plan=plan_fields(plan)), why


def plan_fields(plan: Plan) -> dict:
    """What a prediction records of the run that will be trained for it."""
    return {
        "depth": plan.depth,
        "params": plan.params(),
        "convention": plan.convention,
        "tokens": plan.tokens,
        "steps": plan.steps,
        "flops": plan.flops,
    }
