"""CORE calibration: GPT-3's CORE from its paper, and a series' CORE as a function of FLOPs.

Two jobs, both pure numpy/scipy (no torch):

1. GPT-3 has no public weights, so its CORE is estimated the way nanochat's
   ``dev/estimate_gpt3_core.ipynb`` does it: on the four GPT-2 models (whose CORE was measured) fit
   CORE against their centered accuracies on the 6 tasks CORE shares with the GPT-3 paper, then
   apply the fit to GPT-3's reported accuracies. Two fits: *simple* (OLS on the mean of the 6
   centered scores) and *ridge* (alpha=0.01 on the 6 centered scores as separate features, features
   and target mean-centered so the intercept is not penalized, i.e. sklearn's Ridge). The estimate
   is their mean. With 4 points the fits are thin: we report R² and leave-one-out error with them.

2. A trained series gives (FLOPs, CORE[, bpb]) points. CORE is fitted against FLOPs in two forms,
   chosen by leave-one-out error: nanochat's ``CORE = 1 - A*C^-k`` ("power") and a "two-step" form
   (bpb from FLOPs by a power law, with a floor when enough points, then CORE from bpb by a
   logistic). Intervals come from a seeded bootstrap over the series' points. Before any of that,
   the series is checked for CORE that is indistinguishable from chance (tiny models score ~0): then
   no CORE curve is made and the caller extrapolates bpb alone.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, minimize_scalar
from scipy.special import expit, logit

from miniseries import reference as ref
from miniseries.errors import UserError
from miniseries.laws.base import LEVEL, Interval

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
# 2. CORE (and bpb) against training FLOPs


@dataclass(frozen=True)
class PowerCore:
    """nanochat's form: CORE = 1 - A*C^-k (k > 0: CORE rises towards 1 with compute)."""

    A: float
    k: float

    def core(self, flops):
        return 1 - self.A * np.power(np.asarray(flops, dtype=float), -self.k)

    def flops_for_core(self, core: float) -> float:
        if self.k <= 0 or core >= 1:
            return float("inf")
        return float(np.exp(np.log(self.A / (1 - core)) / self.k))


@dataclass(frozen=True)
class BpbLaw:
    """bpb = E + B*C^-beta; E = 0 is the plain power law."""

    E: float
    B: float
    beta: float

    def bpb(self, flops):
        return self.E + self.B * np.power(np.asarray(flops, dtype=float), -self.beta)

    def flops_for_bpb(self, bpb: float) -> float:
        if bpb <= self.E or self.beta <= 0:
            return float("inf")  # at or below the floor: no amount of compute gets there
        return float(np.exp(np.log(self.B / (bpb - self.E)) / self.beta))


@dataclass(frozen=True)
class Logistic:
    """CORE = sigmoid(a - b*bpb): lower bpb, higher CORE; 0 and 1 are the far limits."""

    a: float
    b: float

    def core(self, bpb):
        return expit(self.a - self.b * np.asarray(bpb, dtype=float))

    def bpb_for_core(self, core: float) -> float:
        if not 0 < core < 1 or self.b <= 0:
            return float("nan")
        return float((self.a - logit(core)) / self.b)


@dataclass(frozen=True)
class TwoStepCore:
    """CORE from FLOPs through bpb: a bpb law, then a logistic link."""

    bpb_law: BpbLaw
    link: Logistic

    def core(self, flops):
        return self.link.core(self.bpb_law.bpb(flops))

    def flops_for_core(self, core: float) -> float:
        b = self.link.bpb_for_core(core)
        return float("inf") if np.isnan(b) else self.bpb_law.flops_for_bpb(b)


def _fit_power(flops: np.ndarray, core: np.ndarray) -> PowerCore:
    """Linear fit of log(1-CORE) on log C, refined by least squares in CORE units (the noise)."""
    x = np.log(flops)
    x0 = x.mean()
    y = np.log(np.clip(1 - core, 1e-9, None))
    slope, icpt = np.polyfit(x - x0, y, 1)
    sol = least_squares(lambda p: 1 - np.exp(p[0] - p[1] * (x - x0)) - core, [icpt, -slope])
    ln_a, k = sol.x
    return PowerCore(float(np.exp(ln_a + k * x0)), float(k))


def _fit_bpb_plain(flops: np.ndarray, bpb: np.ndarray) -> BpbLaw:
    slope, icpt = np.polyfit(np.log(flops), np.log(bpb), 1)
    return BpbLaw(0.0, float(np.exp(icpt)), float(-slope))


def _fit_bpb_floor(flops: np.ndarray, bpb: np.ndarray) -> BpbLaw:
    """bpb = E + B'*exp(-beta*(lnC - x0)). For a fixed beta, E and B' are a linear fit, so only
    beta is searched (a grid, then a bounded 1-D refinement): fast and free of start points."""
    x = np.log(flops) - np.log(flops).mean()

    def solve(beta: float) -> tuple[float, float, float]:
        z = np.exp(-beta * x)
        (e, b), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(z), z]), bpb, rcond=None)
        if e < 0:  # the floor is a bits-per-byte: it cannot be negative
            e, b = 0.0, float(z @ bpb / (z @ z))
        if b <= 0:  # bpb not falling with compute: no sensible floor law at this beta
            return np.inf, e, b
        return float(np.sum((e + b * z - bpb) ** 2)), float(e), float(b)

    grid = np.geomspace(1e-3, 5.0, 48)
    costs = [solve(beta)[0] for beta in grid]
    i = int(np.argmin(costs))
    if not np.isfinite(costs[i]):
        raise ValueError("bpb does not fall with compute")
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    beta = minimize_scalar(lambda v: solve(v)[0], bounds=(lo, hi), method="bounded").x
    _, e, b = solve(beta)
    x0 = np.log(flops).mean()
    return BpbLaw(e, float(b * np.exp(beta * x0)), float(beta))


def _fit_logistic(bpb: np.ndarray, core: np.ndarray) -> Logistic:
    z = logit(np.clip(core, 1e-3, 1 - 1e-3))
    slope, icpt = np.polyfit(bpb, z, 1)
    sol = least_squares(lambda p: expit(p[0] - p[1] * bpb) - core, [icpt, -slope])
    return Logistic(float(sol.x[0]), float(sol.x[1]))


BPB_FORMS = {"floor": _fit_bpb_floor, "plain": _fit_bpb_plain}
MIN_POINTS_FLOOR = 5  # a 3-parameter law needs some points to spare for leave-one-out


def _loo(fit, predict, cols: tuple[np.ndarray, ...], target: np.ndarray) -> float:
    """RMS leave-one-out error: fit(*cols without i) -> model; predict(model, i) -> value."""
    errs = []
    for i in range(len(target)):
        keep = np.arange(len(target)) != i
        try:
            model = fit(*(c[keep] for c in cols))
            errs.append(target[i] - predict(model, i))
        except (ValueError, np.linalg.LinAlgError):
            errs.append(np.inf)
    return _rms(np.asarray(errs, dtype=float))


def _bootstrap(fit, cols: tuple[np.ndarray, ...], n_boot: int, seed: int, min_distinct: int):
    """Refit on resampled points (seeded); skip draws with too few distinct FLOPs values."""
    rng = np.random.default_rng(seed)
    n, out = len(cols[0]), []
    for _ in range(5 * n_boot):
        if len(out) == n_boot:
            break
        idx = rng.integers(0, n, n)
        if len(np.unique(cols[0][idx])) < min_distinct:
            continue
        try:
            out.append(fit(*(c[idx] for c in cols)))
        except (ValueError, np.linalg.LinAlgError):
            continue
    return tuple(out)


@dataclass
class BpbFit:
    """bpb against FLOPs: the chosen form, both forms' LOO error, bootstrap refits."""

    form: str
    law: BpbLaw
    loo_rmse: dict[str, float]
    samples: tuple[BpbLaw, ...] = ()

    def bpb_at(self, flops: float, level: float = LEVEL) -> Interval:
        s = np.array([m.bpb(flops) for m in self.samples])
        return Interval.from_samples(float(self.law.bpb(flops)), s, level, nan_is_unbounded=True)

    def flops_for_bpb(self, bpb: float, level: float = LEVEL) -> Interval:
        s = np.array([m.flops_for_bpb(bpb) for m in self.samples])
        return Interval.from_samples(self.law.flops_for_bpb(bpb), s, level, nan_is_unbounded=True)

    def describe(self) -> str:
        law = self.law
        floor = f"{law.E:.4g} + " if self.form == "floor" else ""
        loo = ", ".join(f"{k} {v:.3g}" for k, v in self.loo_rmse.items())
        return f"bpb = {floor}{law.B:.4g}·C^-{law.beta:.4g} ({self.form}; LOO RMSE {loo})"


def fit_bpb_law(flops, bpb, n_boot: int = 200, seed: int = 0) -> BpbFit:
    """Fit bpb(C); with >= 5 points try a floor and keep whichever form has lower LOO error."""
    c, b = _as_series(flops, "flops"), _as_series(bpb, "bpb")
    if np.any(b <= 0):
        raise UserError("bpb values must be positive; check the series' bpb column")
    forms = ["plain"] + (["floor"] if len(c) >= MIN_POINTS_FLOOR else [])
    loo = {f: _loo(BPB_FORMS[f], lambda m, i: m.bpb(c[i]), (c, b), b) for f in forms}
    form = min(forms, key=lambda f: loo[f])
    samples = _bootstrap(BPB_FORMS[form], (c, b), n_boot, seed, 4 if form == "floor" else 3)
    return BpbFit(form, BPB_FORMS[form](c, b), loo, samples)


@dataclass
class CoreFit:
    """CORE against FLOPs: each form's point fit, LOO error and bootstrap refits; one is chosen."""

    chosen: str
    models: dict  # form name -> PowerCore | TwoStepCore
    loo_rmse: dict[str, float]
    samples: dict = field(default_factory=dict)  # form name -> tuple of refits
    flops_range: tuple[float, float] = (float("nan"), float("nan"))

    @classmethod
    def from_law(cls, A: float, k: float) -> "CoreFit":
        """A published law (e.g. nanochat's 3.7555, 0.0344) as a fit without samples."""
        return cls("power", {"power": PowerCore(A, k)}, {"power": float("nan")})

    @property
    def model(self):
        return self.models[self.chosen]

    def flops_samples(self, core: float, form: str | None = None) -> np.ndarray:
        return np.array([m.flops_for_core(core) for m in self.samples.get(form or self.chosen, ())])

    def flops_for_core(
        self, core: float, level: float = LEVEL, form: str | None = None
    ) -> Interval:
        """FLOPs needed to reach ``core``, with a bootstrap interval (inf = out of reach)."""
        model = self.models[form or self.chosen]
        return Interval.from_samples(
            model.flops_for_core(core), self.flops_samples(core, form), level, nan_is_unbounded=True
        )

    def describe(self) -> str:
        parts = []
        for name, m in self.models.items():
            if isinstance(m, PowerCore):
                law = f"CORE = 1 - {m.A:.4g}·C^-{m.k:.4g}"
            else:
                law = f"CORE = sigmoid({m.link.a:.3g} - {m.link.b:.3g}·bpb(C))"
            mark = " (chosen)" if name == self.chosen else ""
            loo = self.loo_rmse[name]
            parts.append(f"{name}{mark}: {law}" + (f", LOO RMSE {loo:.3g}" if loo == loo else ""))
        return "; ".join(parts)


def _fit_two_step(bpb_form: str):
    def fit(c, core, b):
        return TwoStepCore(BPB_FORMS[bpb_form](c, b), _fit_logistic(b, core))

    return fit


def fit_core_law(flops, core, bpb=None, n_boot: int = 200, seed: int = 0) -> CoreFit:
    """Fit both forms (two-step only with bpb), pick the lower LOO error, bootstrap both."""
    c, y = _as_series(flops, "flops"), _as_series(core, "core")
    fits = {"power": (_fit_power, (c, y), 3)}
    if bpb is not None:
        b = _as_series(bpb, "bpb")
        bpb_form = fit_bpb_law(c, b, n_boot=0).form
        fits["two-step"] = (_fit_two_step(bpb_form), (c, y, b), 4 if bpb_form == "floor" else 3)
    models, loo, samples = {}, {}, {}
    for name, (fit, cols, min_distinct) in fits.items():
        models[name] = fit(*cols)
        loo[name] = _loo(fit, lambda m, i: float(m.core(c[i])), cols, y)
        samples[name] = _bootstrap(fit, cols, n_boot, seed, min_distinct)
    chosen = min(loo, key=lambda f: (loo[f], f != "power"))  # ties go to nanochat's form
    return CoreFit(chosen, models, loo, samples, (float(c.min()), float(c.max())))


# ---------------------------------------------------------------------------------------------
# 3. Is CORE at chance?

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
    c, y = _as_series(flops, "flops"), _as_series(core, "core")
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
# 4. One call for a series


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


def _as_series(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 2 or not np.all(np.isfinite(v)):
        raise UserError(f"{name}: need >= 2 finite values, got {v.size} ({values!r:.80})")
    if name == "flops" and np.any(v <= 0):
        raise UserError("flops must be positive (training FLOPs of each run)")
    return v
