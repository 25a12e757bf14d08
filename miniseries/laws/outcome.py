"""Prediction intervals: where the number that will be *measured* at a new budget will land.

The isoFLOP fit's interval on L*(C) is a confidence interval of the fitted law: where the law's
value lies. What a user then measures is one run (``miniseries run``: one depth, one seed) or the
vertex of a parabola over a few runs (the demo's held-out budget). Its interval must add what that
measurement scatters by, and the bias of training a size that is not exactly N*:

- fit uncertainty: the bootstrap samples of the law at C (already in the fit);
- off-optimum penalty: a run of size N sits c2 (log10 N - log10 N*)^2 above the optimum, c2 the
  mean curvature of the fitted parabolas; evaluated per bootstrap sample, so N*'s uncertainty
  moves it too (always >= 0: a single run's outcome is biased high, never low);
- run noise: the pooled scatter of the runs around their budget's parabola (seed noise plus
  how far loss vs log N is from a parabola), or a measured seed noise (study/seed_noise.py)
  where that is larger, with its degrees of freedom: drawn as Student-t,
  scaled by the leverage of what is measured (1 for one run; x'(X'X)^-1 x at the vertex for a
  parabola over the window's sizes);
- misspecification: how far the vertices scatter around the power law beyond their own noise,
  by leaving one budget out (needs 3 usable budgets; otherwise 0, and the components say so).

The interval is the percentile interval of Monte Carlo draws of their sum (seeded).
"""

import math
from collections.abc import Sequence

import numpy as np

from miniseries.laws.base import LEVEL, PREDICTION, Interval, Run, group_budgets
from miniseries.laws.isoflop import ScalingFit
from miniseries.laws.parametric import ParametricFit

DRAWS = 20_000  # Monte Carlo draws behind one interval (percentiles stable to ~1e-3 of the width)


def run_noise(fit: ScalingFit, runs: list[Run]) -> tuple[float, int]:
    """(sigma, degrees of freedom): pooled residual scatter of runs around their budget's parabola,
    over the usable budgets."""
    usable = {v.budget for v in fit.vertices if v.usable}
    ss, dof = 0.0, 0
    for c, rs in group_budgets(runs):
        if c not in usable or len(rs) < 4:
            continue
        x = np.log10([r.params for r in rs])
        y = np.array([r.loss for r in rs])
        resid = y - np.polyval(np.polyfit(x, y, 2), x)
        ss, dof = ss + float(resid @ resid), dof + len(rs) - 3
    return (math.sqrt(ss / dof), dof) if dof else (math.nan, 0)


def leverage(window_params: Sequence[float], x: float) -> float:
    """Variance of a parabola's fitted value at x (log10 N), in units of one run's noise variance,
    for a parabola fitted to runs of the given sizes."""
    xs = np.log10(np.asarray(window_params, float))
    design = np.stack([np.ones_like(xs), xs, xs**2], 1)
    v = np.array([1.0, x, x * x])
    return float(v @ np.linalg.pinv(design.T @ design) @ v)


def law_scatter(fit: ScalingFit, sigma: float, runs: list[Run]) -> float:
    """Scatter of the vertices' L* around the power law beyond their own noise, leaving one budget
    out at a time; 0 with fewer than 3 usable budgets (nothing to leave out)."""
    used = [v for v in fit.vertices if v.usable]
    if len(used) < 3:
        return 0.0
    lc = np.log10([v.budget for v in used])
    e = fit.floor_law.E if fit.floor_law is not None else 0.0  # the floored L* = E + k C^-gamma
    with np.errstate(invalid="ignore", divide="ignore"):
        ll = np.log10(np.array([v.loss_opt for v in used]) - e)
    by_budget = dict(group_budgets(runs))
    resid, own = [], []
    for i, v in enumerate(used):
        keep = (np.arange(len(used)) != i) & np.isfinite(ll)
        if keep.sum() < 2:
            continue
        slope, icpt = np.polyfit(lc[keep], ll[keep], 1)
        resid.append(v.loss_opt - e - 10 ** (icpt + slope * lc[i]))
        x_star = math.log10(v.n_opt)
        own.append(leverage([r.params for r in by_budget.get(v.budget, [])] or [v.n_opt], x_star))
    if not resid:
        return 0.0
    excess = float(np.mean(np.square(resid))) - (sigma if math.isfinite(sigma) else 0.0) ** 2 * (
        float(np.mean(own))
    )
    return math.sqrt(max(0.0, excess))


def outcome_interval(
    fit: ScalingFit,
    runs: list[Run],
    budget: float,
    params: Sequence[float],
    parametric: ParametricFit | None = None,
    level: float = LEVEL,
    seed: int = 0,
    noise_floor: tuple[float, int] | None = None,
) -> tuple[Interval, dict]:
    """The prediction interval of what will be measured at ``budget``: one run of size
    ``params[0]`` (one size given), or the parabola vertex over runs of the given sizes.
    Returns the interval and its components (each in loss units), for the record."""
    if fit.n_law is None:
        raise ValueError("a prediction interval needs a fit with power laws (2 usable budgets)")
    lc, s = math.log10(budget), fit.samples
    if fit.floor_law is not None:  # the floored L*(C), as the fit predicts it
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
    source = "runs around their parabolas"
    if noise_floor and (not dof or noise_floor[0] > sigma):  # measured seed noise is a floor
        (sigma, dof), source = noise_floor, "seeds (miniseries noise)"
    mis = law_scatter(fit, sigma, runs)
    rng = np.random.default_rng(seed)
    # the isoFLOP route's expected measurement per bootstrap sample, with its own
    # misspecification (vertices off the power law); the parametric route's needs none (its
    # misfit is in the runs' scatter around it)
    pick = rng.integers(0, law_l.size, DRAWS)
    iso = law_l[pick] + penalty[pick] + rng.standard_normal(DRAWS) * mis
    other = _parametric_centres(parametric, budget, params)
    centre = iso
    if other.size:  # two reasonable forms: the interval spans both (an equal mixture)
        half = DRAWS // 2
        centre = np.concatenate([iso[:half], other[rng.integers(0, other.size, DRAWS - half)]])
    noise = rng.standard_t(dof, DRAWS) * sigma * math.sqrt(h) if dof else np.zeros(DRAWS)
    draws = centre + noise
    interval = Interval.from_samples(point_l + point_pen, draws, level, PREDICTION)
    components = {
        "law": point_l,
        "penalty": point_pen,
        "run_noise": sigma,
        "noise_dof": dof,
        "noise_from": source,
        "leverage": h,
        "law_scatter": mis,
        "fit_resamples": int(ok.sum()),
        "parametric": float(np.median(other)) if other.size else None,
        "measured": "one run" if one_run else f"parabola vertex over {len(params)} runs",
    }
    return interval, components


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
