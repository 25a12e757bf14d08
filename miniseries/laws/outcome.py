"""Prediction intervals: where the number that will be *measured* at a new budget will land.

The isoFLOP fit's interval on L*(C) is a confidence interval of the fitted law: where the law's
value lies. What a user then measures is one run (``miniseries run``: one depth, one seed) or the
vertex of a parabola over a few runs (the demo's held-out budget). Its interval must add what that
measurement scatters by, and the bias of training a size that is not exactly N*:

- fit uncertainty: the bootstrap samples of the law at C (already in the fit);
- off-optimum penalty: a run of size N sits c2 (log10 N - log10 N*)^2 above the optimum, c2 the
  mean curvature of the fitted parabolas; evaluated per bootstrap sample, so N*'s uncertainty
  moves it too (always >= 0: a single run's outcome is biased high, never low);
- run noise: the runs' pooled scatter around a smooth profile per budget (a cubic with 5+
  sizes, so the parabola's lack of fit is not counted as noise), pooled by degrees of freedom
  with a measured seed noise (study/seed_noise.py) where there is one: drawn as Student-t,
  scaled by the leverage of what is measured (1 for one run; x'(X'X)^-1 x at the vertex for a
  parabola over the window's sizes); one run adds the parabola's lack of fit;
- misspecification: how far the vertices scatter around the law beyond their own noise, from
  the in-sample residuals with the line's 2 dof, times (1 + the line's leverage at C) (needs 3
  usable budgets; otherwise 0, and the components say so).

The interval is the percentile interval of Monte Carlo draws of their sum (seeded).
"""

import math
from collections.abc import Sequence

import numpy as np

from miniseries.errors import UserError
from miniseries.laws.base import LEVEL, PREDICTION, Interval, Run, group_budgets
from miniseries.laws.isoflop import ScalingFit, profile_residuals
from miniseries.laws.parametric import ParametricFit, fit_parametric

DRAWS = 20_000  # Monte Carlo draws behind one interval (percentiles stable to ~1e-3 of the width)


def run_noise(fit: ScalingFit, runs: list[Run]) -> tuple[float, int]:
    """(sigma, degrees of freedom): the runs' noise, pooled over the usable budgets' scaled
    residuals around a smooth profile (a cubic where a budget has 5+ sizes, so that the
    parabola's lack of fit is not counted as noise; laws/isoflop.profile_residuals)."""
    ss, dof = 0.0, 0
    for _, resid, k in _profiles(fit, runs, noise=True):
        ss, dof = ss + float(resid @ resid), dof + k
    return (math.sqrt(ss / dof), dof) if dof else (math.nan, 0)


def lack_of_fit(fit: ScalingFit, runs: list[Run], sigma: float) -> float:
    """How far one run sits off its budget's parabola beyond its noise: sqrt(max(0, s_2^2 -
    sigma^2)) with s_2 the pooled parabola residual scatter. It matters for one run (whose
    size penalty is read off the parabola), not for a vertex (which a parabola measures)."""
    ss, dof = 0.0, 0
    for _, resid, k in _profiles(fit, runs, noise=False):
        ss, dof = ss + float(resid @ resid), dof + k
    if not dof or not math.isfinite(sigma):
        return 0.0
    return math.sqrt(max(0.0, ss / dof - sigma**2))


def _profiles(fit: ScalingFit, runs: list[Run], noise: bool):
    """(losses, scaled residuals, dof) per usable budget: around the smooth profile (``noise``)
    or around the parabola."""
    usable = {v.budget for v in fit.vertices if v.usable}
    for c, rs in group_budgets(runs):
        if c not in usable:
            continue
        x, y = np.log10([r.params for r in rs]), np.array([r.loss for r in rs])
        if noise:
            yield (y, *profile_residuals(x, y)[1:])
        elif len(rs) > 3:
            design = np.vander(x - x.mean(), 3)
            hat = design @ np.linalg.pinv(design)
            resid = (y - hat @ y) / np.sqrt(np.clip(1 - np.diag(hat), 1e-12, None))
            yield y, resid, len(rs) - 3


def leverage(window_params: Sequence[float], x: float) -> float:
    """Variance of a parabola's fitted value at x (log10 N), in units of one run's noise variance,
    for a parabola fitted to runs of the given sizes."""
    xs = np.log10(np.asarray(window_params, float))
    design = np.stack([np.ones_like(xs), xs, xs**2], 1)
    v = np.array([1.0, x, x * x])
    return float(v @ np.linalg.pinv(design.T @ design) @ v)


def law_scatter(fit: ScalingFit, sigma: float, runs: list[Run], budget: float) -> float:
    """Scatter of a new vertex's L* around the law beyond its own noise, at ``budget``.

    The vertices' in-sample residuals around the law, with the 2 dof the line takes
    (E[SSR] = (m - 2)(tau^2 + mean vertex noise)), give the between-budget scatter tau^2; a new
    budget has its own deviation plus the law's error from the others', tau^2 (1 + h) with h the
    line's leverage at ``budget`` (the bootstrap, on the fixed design, carries only the runs'
    noise). Leave-one-out residuals would re-count the fit's own uncertainty (variance
    sigma^2/(1 - h)). 0 with fewer than 3 usable budgets (no dof), said in the components."""
    used = [v for v in fit.vertices if v.usable]
    if len(used) < 3:
        return 0.0
    lc = np.log10([v.budget for v in used])
    e = fit.floor_law.E if fit.floored else 0.0  # the floored L* = E + k C^-gamma
    loss = np.array([v.loss_opt for v in used])
    with np.errstate(invalid="ignore", divide="ignore"):
        ll = np.log10(loss - e)
    keep = np.isfinite(ll)
    if keep.sum() < 3:
        return 0.0
    slope, icpt = np.polyfit(lc[keep], ll[keep], 1)
    resid = loss[keep] - e - 10 ** (icpt + slope * lc[keep])
    by_budget = dict(group_budgets(runs))
    own = [leverage([r.params for r in by_budget.get(v.budget, [])] or [v.n_opt],
                    math.log10(v.n_opt)) for v, k in zip(used, keep) if k]  # fmt: skip
    s2 = sigma**2 if math.isfinite(sigma) else 0.0
    tau2 = float(resid @ resid) / (keep.sum() - 2) - s2 * float(np.mean(own))
    x = lc[keep] - lc[keep].mean()
    h = 1 / keep.sum() + (math.log10(budget) - lc[keep].mean()) ** 2 / float(x @ x)
    return math.sqrt(max(0.0, tau2) * (1 + h))


def pooled_noise(a: tuple[float, int], b: tuple[float, int] | None) -> tuple[float, int]:
    """Two estimates of the same noise (sigma, dof) pooled by their degrees of freedom: a
    measured seed noise adds evidence, it does not replace the better-determined estimate."""
    if not b or not b[1]:
        return a
    if not a[1] or not math.isfinite(a[0]):
        return b
    dof = a[1] + b[1]
    return math.sqrt((a[1] * a[0] ** 2 + b[1] * b[0] ** 2) / dof), dof


def outcome_interval(
    fit: ScalingFit,
    runs: list[Run],
    budget: float,
    params: Sequence[float],
    parametric: ParametricFit | None = None,
    level: float = LEVEL,
    seed: int = 0,
    noise_floor: tuple[float, int] | None = None,
    centre: tuple[str, dict] | None = None,
) -> tuple[Interval, dict]:
    """The prediction interval of what will be measured at ``budget``: one run of size
    ``params[0]`` (one size given), or the parabola vertex over runs of the given sizes.
    Returns the interval and its components (each in loss units), for the record. ``centre``:
    ``centre_route``'s answer for this fit, when the caller has it (it refits per origin)."""
    if fit.n_law is None:
        raise ValueError("a prediction interval needs a fit with power laws (2 usable budgets)")
    lc, s = math.log10(budget), fit.samples
    if fit.floored:  # the floored L*(C), as the fit predicts it
        with np.errstate(over="ignore"):
            boot_l = s["floor_E"] + 10 ** (s["logk_floor"] - s["gamma_floor"] * lc)
    else:
        boot_l = 10 ** (s["logk_l"] + s["exp_l"] * lc)
    log_n = s["logk_n"] + s["exp_n"] * lc
    ok = np.isfinite(boot_l) & np.isfinite(log_n)
    law_l, law_x = boot_l[ok], log_n[ok]
    point_l, point_x = fit.loss_at(budget), math.log10(float(fit.n_law(budget)))
    if law_l.size == 0:  # no bootstrap: the point alone carries the fit
        law_l, law_x = np.array([point_l]), np.array([point_x])
    c2 = float(np.mean([v.coeffs[0] for v in fit.vertices if v.usable]))
    one_run = len(params) == 1
    if one_run:
        x_run = math.log10(params[0])
        penalty, point_pen, h = c2 * (x_run - law_x) ** 2, c2 * (x_run - point_x) ** 2, 1.0
    else:  # a parabola over the window finds the minimum itself: no size penalty
        penalty, point_pen, h = np.zeros_like(law_x), 0.0, leverage(params, point_x)
    sigma, dof = run_noise(fit, runs)
    source = "runs around their budgets' profiles"
    if noise_floor and noise_floor[1]:
        (sigma, dof), source = pooled_noise((sigma, dof), noise_floor), source + " and seeds"
    off = lack_of_fit(fit, runs, sigma) if one_run else 0.0
    mis = law_scatter(fit, sigma, runs, budget)
    rng = np.random.default_rng(seed)
    # the isoFLOP route's expected measurement per bootstrap sample, with its own
    # misspecification (vertices off the power law); the parametric route's needs none (its
    # misfit is in the runs' scatter around it)
    pick = rng.integers(0, law_l.size, DRAWS)
    iso = law_l[pick] + penalty[pick] + rng.standard_normal(DRAWS) * mis
    other = _parametric_centres(parametric, budget, params)
    if not other.size:
        centre = ("isoflop", {})
    route, errors = centre or centre_route(fit, runs, parametric)
    centre = iso
    if route == "parametric":  # its point too: the median of its refits' expected measurement
        centre, point_l, point_pen = (
            other[rng.integers(0, other.size, DRAWS)],
            float(np.median(other)),
            0.0,
        )
    elif route == "both":  # no evidence between two reasonable forms: span both (equal mixture)
        half = DRAWS // 2
        centre = np.concatenate([iso[:half], other[rng.integers(0, other.size, DRAWS - half)]])
    noise = rng.standard_t(dof, DRAWS) * sigma * math.sqrt(h) if dof else np.zeros(DRAWS)
    draws = centre + noise + rng.standard_normal(DRAWS) * off
    interval = Interval.from_samples(point_l + point_pen, draws, level, PREDICTION)
    components = {
        "law": point_l,
        "penalty": point_pen,
        "run_noise": sigma,
        "noise_dof": dof,
        "noise_from": source,
        "leverage": h,
        "law_scatter": mis,
        "lack_of_fit": off,
        "fit_resamples": int(ok.sum()),
        "parametric": float(np.median(other)) if other.size else None,
        "centre": route,
        "forward_errors": errors,
        "measured": "one run" if one_run else f"parabola vertex over {len(params)} runs",
    }
    return interval, components


CENTRE_ORIGINS = 3  # rolling origins behind centre_route: the latest, nearest to the forecast


def centre_route(fit: ScalingFit, runs: list[Run], parametric: ParametricFit) -> tuple[str, dict]:
    """Which route's expected measurement centres the interval: the one with the smaller
    rolling-origin error on these runs (fit the usable budgets below k, forecast every larger
    budget's vertex L*; sum of |log error|; the latest CENTRE_ORIGINS origins k >= 2, which also
    bounds the parametric refits), "both" (an equal mixture) with fewer than 3 usable budgets,
    where there is nothing to forecast. The isoFLOP route forecasts with its preferred L* form."""
    used = sorted((v for v in fit.vertices if v.usable), key=lambda v: v.budget)
    if len(used) < 3 or fit.floor_law is None:
        return "both", {}
    lc = np.log10([v.budget for v in used])
    loss = np.array([v.loss_opt for v in used])
    e = fit.floor_law.E if fit.floored else 0.0
    by_budget = dict(group_budgets(runs))
    iso = par = 0.0
    for k in range(max(2, len(used) - CENTRE_ORIGINS), len(used)):
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.log10(loss[:k] - e)
        if not np.all(np.isfinite(y)):
            return "both", {}
        slope, icpt = np.polyfit(lc[:k], y, 1)
        iso += float(np.sum(np.abs(np.log((e + 10 ** (icpt + slope * lc[k:])) / loss[k:]))))
        below = [r for v in used[:k] for r in by_budget[v.budget]]
        try:
            sub = fit_parametric(below, fit.convention, 0, objective=parametric.objective,
                                 fpt=parametric.fpt)  # fmt: skip
        except UserError:
            return "both", {}
        for v in used[k:]:
            par += abs(math.log(sub.predict(v.budget).loss.point / v.loss_opt))
    errors = {"isoflop": iso, "parametric": par}
    return ("parametric" if par < iso else "isoflop"), errors


def _parametric_centres(par: ParametricFit | None, budget: float, params: Sequence[float]):
    """The parametric route's expected measurement per bootstrap refit: L(N, C/(cN)) of the one
    run, or the minimum over N at C for a parabola vertex. Empty without a usable fit."""
    if par is None or par.samples is None or len(par.samples) == 0:
        return np.zeros(0)
    if len(params) == 1:
        n = float(params[0])
        values = par.sample_losses(n, budget / (par.fpt(n)))
    else:
        values = par.sample_optima(budget)[2]
    return values[np.isfinite(values)]
