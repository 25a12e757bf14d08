"""CORE calibration: GPT-3's CORE from its paper, and one call that fits a trained series.

1. GPT-3 has no public weights, so its CORE is estimated the way nanochat's
   ``dev/estimate_gpt3_core.ipynb`` does it: on the four GPT-2 models (whose CORE was measured) fit
   CORE against their centered accuracies on the 6 tasks CORE shares with the GPT-3 paper, then
   apply the fit to GPT-3's reported accuracies. Two fits: *simple* (OLS on the mean of the 6
   centered scores) and *ridge* (alpha=0.01 on the 6 centered scores as separate features, features
   and target mean-centered so the intercept is not penalized, i.e. sklearn's Ridge). The estimate
   is their mean. With 4 points the fits are thin: we report R² and leave-one-out error with them
   (here leave-one-out is the right check: the GPT-3 estimates are applied inside the GPT-2 range
   of scores, not extrapolated past it).

2. A trained series gives (FLOPs, CORE[, bpb]) points. First the series is checked for CORE that
   is indistinguishable from chance (tiny models score ~0): then no CORE curve is made and the
   caller extrapolates bpb alone. Otherwise CORE (and bpb) are fitted against FLOPs by
   ``miniseries.laws.flops_laws``, which picks among forms by forward validation.
"""

from dataclasses import dataclass

import numpy as np

from miniseries.errors import UserError
from miniseries.laws.flops_laws import BpbFit, CoreFit, as_series, fit_bpb_law, fit_core_law
from miniseries.report import reference as ref

# ---------------------------------------------------------------------------------------------
# 1. GPT-3 CORE from GPT-2 calibration


@dataclass(frozen=True)
class LinearFit:
    """CORE = features @ weights + intercept, with its in-sample R² and leave-one-out RMSE."""

    weights: tuple[float, ...]
    intercept: float
    r2: float
    loo_rmse: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(features, dtype=float))
        return x @ np.asarray(self.weights) + self.intercept


def ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares with an intercept; x is (n, p)."""
    a = np.column_stack([x, np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return coef[:-1], float(coef[-1])


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge with an unpenalized intercept (centre x and y, solve, put the means back): the
    definition that reproduces nanochat's printed weights (0.1155, 0.1, 0.1226, ...)."""
    xm, ym = x.mean(0), y.mean()
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, float(ym - xm @ w)


def r_squared(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def loo_residuals(fit, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-out: refit without point i, predict point i. ``fit(x, y) -> (w, b)``."""
    out = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        w, b = fit(x[keep], y[keep])
        out[i] = y[i] - (x[i] @ w + b)
    return out


def _linear_fit(fit, x: np.ndarray, y: np.ndarray) -> LinearFit:
    w, b = fit(x, y)
    loo = loo_residuals(fit, x, y)
    return LinearFit(tuple(float(v) for v in w), b, r_squared(y, x @ w + b), _rms(loo))


def _rms(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(v))))


@dataclass(frozen=True)
class GPT3Estimate:
    name: str
    params: float
    mean_centered: float
    simple: float
    ridge: float
    final: float  # (simple + ridge) / 2, as nanochat
    nanochat: float  # nanochat's published final estimate, for comparison


@dataclass(frozen=True)
class Calibration:
    """The GPT-2 fits and the GPT-3 estimates they give."""

    simple: LinearFit  # one feature: the mean of the 6 centered scores
    ridge: LinearFit  # six features: the centered scores
    alpha: float
    final_loo_rmse: float  # LOO error of the averaged predictor
    gpt2: tuple[dict, ...]  # per GPT-2 model: name, mean6, core, simple, ridge
    estimates: tuple[GPT3Estimate, ...]

    def estimate(self, name: str) -> float:
        for e in self.estimates:
            if e.name == name:
                return e.final
        raise UserError(
            f"unknown GPT-3 model {name!r}; choose one of {[e.name for e in self.estimates]}"
        )

    def to_dict(self) -> dict:
        return {
            "simple": {
                "slope": self.simple.weights[0],
                "intercept": self.simple.intercept,
                "r2": self.simple.r2,
                "loo_rmse": self.simple.loo_rmse,
            },
            "ridge": {
                "alpha": self.alpha,
                "weights": dict(zip(ref.TASKS, self.ridge.weights)),
                "intercept": self.ridge.intercept,
                "r2": self.ridge.r2,
                "loo_rmse": self.ridge.loo_rmse,
            },
            "final_loo_rmse": self.final_loo_rmse,
            "gpt2": list(self.gpt2),
            "gpt3": [e.__dict__ for e in self.estimates],
        }


def calibrate_gpt3(alpha: float = 0.01) -> Calibration:
    """Fit CORE on the 4 GPT-2 models and estimate the 8 GPT-3 models' CORE."""
    x = np.array([m.scores for m in ref.GPT2_MODELS])
    y = np.array([m.core for m in ref.GPT2_MODELS])
    g = np.array([ref.gpt3_centered(m) for m in ref.GPT3_MODELS])

    def simple_fit(x6, yy):
        w, b = ols(x6.mean(1, keepdims=True), yy)
        return np.full(6, w[0] / 6), b  # the mean as a dot product, so all fits take 6 features

    def ridge_fit(x6, yy):
        return ridge(x6, yy, alpha)

    def final_fit(x6, yy):
        (ws, bs), (wr, br) = simple_fit(x6, yy), ridge_fit(x6, yy)
        return (ws + wr) / 2, (bs + br) / 2

    s6, r = _linear_fit(simple_fit, x, y), _linear_fit(ridge_fit, x, y)
    simple = LinearFit((s6.weights[0] * 6,), s6.intercept, s6.r2, s6.loo_rmse)
    final_loo = _rms(loo_residuals(final_fit, x, y))
    gpt2 = tuple(
        {
            "name": m.name,
            "mean6": float(x[i].mean()),
            "core": m.core,
            "simple": float(s6.predict(x[i])[0]),
            "ridge": float(r.predict(x[i])[0]),
        }
        for i, m in enumerate(ref.GPT2_MODELS)
    )
    estimates = tuple(
        GPT3Estimate(
            m.name,
            m.params,
            float(g[i].mean()),
            float(s6.predict(g[i])[0]),
            float(r.predict(g[i])[0]),
            float((s6.predict(g[i])[0] + r.predict(g[i])[0]) / 2),
            ref.NANOCHAT_GPT3_CORE[m.name],
        )
        for i, m in enumerate(ref.GPT3_MODELS)
    )
    return Calibration(simple, r, alpha, final_loo, gpt2, estimates)


# ---------------------------------------------------------------------------------------------
# 2. Is CORE at chance?

DEFAULT_Z = 2.0


@dataclass(frozen=True)
class ChanceVerdict:
    at_chance: bool
    reason: str
    slope: float  # d CORE / d log10 C
    slope_se: float


def core_standard_error(accuracies, baselines, n_examples) -> float:
    """Binomial standard error of CORE (the mean of centered accuracies over tasks).

    Per task, sd(acc) = sqrt(p(1-p)/n) with p = (correct + 0.5)/(n + 1) (so a task at 0 correct
    still has some noise), divided by (1 - baseline) for centering; tasks are independent.
    """
    acc, rb, n = (np.asarray(v, dtype=float) for v in (accuracies, baselines, n_examples))
    p = (acc * n + 0.5) / (n + 1)
    var = p * (1 - p) / n / (1 - rb) ** 2
    return float(np.sqrt(var.sum()) / len(acc))


def core_at_chance(flops, core, core_se=None, z: float = DEFAULT_Z) -> ChanceVerdict:
    """CORE is at chance when every point is within z standard errors of 0, or when CORE has no
    significantly positive slope against log10 FLOPs (t < z). ``core_se``: per-point standard
    errors (see core_standard_error); without them only the slope test (residual scatter) runs."""
    c, y = as_series(flops, "flops"), as_series(core, "core")
    x = np.log10(c)
    if core_se is not None:
        se = np.broadcast_to(np.asarray(core_se, dtype=float), y.shape)
        if np.any(se <= 0):
            raise UserError("CORE standard errors must be positive")
        zmax = float(np.max(np.abs(y) / se))
        if zmax < z:
            return ChanceVerdict(
                True,
                f"every CORE value is within {z:g} standard errors of 0 (max |CORE|/SE = "
                f"{zmax:.2f})",
                *_slope(x, y, se),
            )
    elif len(y) < 3:
        raise UserError("need >= 3 series points (or per-point CORE standard errors) to judge CORE")
    slope, slope_se = _slope(x, y, None if core_se is None else se)
    t = slope / slope_se if slope_se > 0 else np.copysign(np.inf, slope)
    if t < z:
        return ChanceVerdict(
            True,
            f"no significant positive slope of CORE vs log10 FLOPs "
            f"(slope {slope:.3g} ± {slope_se:.2g} per decade, t = {t:.2f} < {z:g})",
            slope,
            slope_se,
        )
    return ChanceVerdict(False, f"CORE rises with compute (t = {t:.1f})", slope, slope_se)


def _slope(x: np.ndarray, y: np.ndarray, se: np.ndarray | None) -> tuple[float, float]:
    """(Weighted) least-squares slope and its standard error; with known errors the error is
    inflated by the residual scatter when that is larger than the errors explain."""
    w = np.ones_like(y) if se is None else 1 / se**2
    xm = np.sum(w * x) / w.sum()
    sxx = np.sum(w * (x - xm) ** 2)
    if sxx <= 0:
        raise UserError("all series points have the same FLOPs; need at least two budgets")
    slope = float(np.sum(w * (x - xm) * y) / sxx)
    resid = y - (np.sum(w * y) / w.sum() + slope * (x - xm))
    dof = len(y) - 2
    scatter = np.sum(w * resid**2) / dof if dof > 0 else (0.0 if se is None else 1.0)
    if se is not None:
        scatter = max(scatter, 1.0)
    return slope, float(np.sqrt(scatter / sxx))


# ---------------------------------------------------------------------------------------------
# 3. One call for a series


@dataclass
class SeriesFit:
    chance: ChanceVerdict | None  # None when the series has no CORE
    core_fit: CoreFit | None  # None when CORE is at chance (or absent): extrapolate bpb alone
    bpb_fit: BpbFit | None


def fit_series(
    flops, core=None, bpb=None, core_se=None, n_boot: int = 200, seed: int = 0
) -> SeriesFit:
    """Judge chance, then fit CORE (if not at chance) and bpb (if given) against FLOPs."""
    if core is None and bpb is None:
        raise UserError("the series has neither CORE nor bpb values: nothing to fit")
    bpb_fit = fit_bpb_law(flops, bpb, n_boot, seed) if bpb is not None else None
    if core is None:
        return SeriesFit(None, None, bpb_fit)
    chance = core_at_chance(flops, core, core_se)
    core_fit = None if chance.at_chance else fit_core_law(flops, core, bpb, n_boot, seed)
    return SeriesFit(chance, core_fit, bpb_fit)
