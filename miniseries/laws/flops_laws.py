"""A series' CORE and bpb as functions of training FLOPs, and which form to extrapolate with.

CORE is fitted against FLOPs in two forms: nanochat's ``CORE = 1 - A*C^-k`` ("power") and a
"two-step" form (bpb from FLOPs by a power law, with a floor when there are enough points, then
CORE from bpb by a logistic). bpb alone is fitted as a plain power law or one with a floor.
Intervals come from a seeded bootstrap over the series' points, one set of refits per form.

Which form to trust is decided by *forward validation*, not leave-one-out: the table's job is to
extrapolate past the largest run, so each form is fitted on the smallest budgets and scored on the
larger ones it did not see (rolling origin). Leave-one-out mostly asks a form to interpolate a
point between its neighbours, which says little about how it behaves a decade further out: two
forms can interpolate equally well and part by 100× three decades on. Every form's forward score
is kept, so the table can print it, and every fitted form stays available, so the table can show
where they disagree. Pure numpy/scipy (no torch).
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, minimize_scalar
from scipy.special import expit, logit

from miniseries.errors import UserError
from miniseries.laws.base import LEVEL, Interval

# ---------------------------------------------------------------------------------------------
# The laws


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


# ---------------------------------------------------------------------------------------------
# Point fits


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


def _fit_two_step(bpb_form: str):
    def fit(c, core, b):
        return TwoStepCore(BPB_FORMS[bpb_form](c, b), _fit_logistic(b, core))

    return fit


BPB_FORMS = {"plain": _fit_bpb_plain, "floor": _fit_bpb_floor}
BPB_PARAMS = {"plain": 2, "floor": 3}  # free parameters of each bpb form
POWER_PARAMS = 2  # A, k
LOGISTIC_PARAMS = 2  # a, b

# ---------------------------------------------------------------------------------------------
# Forward validation: fit the smaller budgets, score the larger ones

MIN_POINTS_PER_PARAM = 2
"""A forward fit sees at least two runs per parameter of its largest least-squares problem. With
one run per parameter a fit passes through its points exactly: nothing tests the form, and its
extrapolation is whatever the last points' noise says. Two per parameter is the fewest that leaves
as many residual degrees of freedom as parameters. It is also what keeps a 3-parameter floor law
off a short series: the floor needs 6 runs to fit and a 7th to be scored on."""


def forward_origins(flops, n_params: int) -> list[int]:
    """Rolling-origin splits of a series sorted by FLOPs: fit on the first k runs, score on the
    rest, for every k from MIN_POINTS_PER_PARAM * n_params to n - 1 that falls between two
    distinct budgets (runs at the same budget are never split across fit and score)."""
    c = np.sort(np.asarray(flops, dtype=float))
    first = MIN_POINTS_PER_PARAM * n_params
    return [k for k in range(max(first, 1), len(c)) if c[k - 1] < c[k]]


def _forward_rmse(fit, predict, cols: tuple[np.ndarray, ...], target, origins) -> float:
    """RMS error on every (origin, later run) pair: fit(*first k of cols) -> model,
    predict(model, flops) -> values. Errors are in the target's units (CORE or bpb), where the
    noise is and where the fits minimize. A refit that fails scores +inf on the runs it could
    not predict: a form that cannot be fitted on the smaller budgets has not earned trust."""
    if not origins:
        return float("nan")
    errs = []
    for k in origins:
        try:
            model = fit(*(c[:k] for c in cols))
            pred = np.asarray(predict(model, cols[0][k:]), dtype=float)
            e = target[k:] - pred
            errs.extend(np.where(np.isfinite(e), e, np.inf))
        except (ValueError, np.linalg.LinAlgError):
            errs.extend([np.inf] * (len(target) - k))
    return _rms(np.asarray(errs, dtype=float))


def _forward_scores(forms: dict, flops: np.ndarray, target: np.ndarray, predict) -> dict:
    """Each form's forward RMSE, all on the same splits: those of the most demanding form that
    can be scored at all (forms must be compared on the same held-out runs). A form with no split
    of its own (too many parameters for the series) scores NaN and cannot be chosen.

    ``forms``: name -> (fit, cols, n_params); cols sorted by FLOPs, cols[0] is FLOPs."""
    scorable = {f: p for f, (_, _, p) in forms.items() if forward_origins(flops, p)}
    if not scorable:
        return {f: float("nan") for f in forms}
    origins = forward_origins(flops, max(scorable.values()))
    return {
        f: _forward_rmse(fit, predict, cols, target, origins) if f in scorable else float("nan")
        for f, (fit, cols, _) in forms.items()
    }


def choose_form(scores: dict[str, float], simplest: str) -> str:
    """The lowest forward RMSE; ties, and a series too short to score any form, go to
    ``simplest`` (the form with fewest parameters: with no evidence, assume least)."""
    scored = {f: s for f, s in scores.items() if s == s}  # NaN: not scored
    if not scored:
        return simplest
    return min(scored, key=lambda f: (scored[f], f != simplest))


def _rms(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(v))))


def _sorted(*cols: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(cols[0], kind="stable")
    return tuple(c[order] for c in cols)


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


# ---------------------------------------------------------------------------------------------
# bpb against FLOPs


@dataclass
class BpbFit:
    """bpb against FLOPs: every fitted form, its forward RMSE and bootstrap refits; one chosen."""

    form: str
    models: dict[str, BpbLaw]
    forward_rmse: dict[str, float]
    form_samples: dict[str, tuple[BpbLaw, ...]] = field(default_factory=dict)
    flops_range: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def law(self) -> BpbLaw:
        return self.models[self.form]

    @property
    def samples(self) -> tuple[BpbLaw, ...]:
        return self.form_samples.get(self.form, ())

    def bpb_at(self, flops: float, level: float = LEVEL, form: str | None = None) -> Interval:
        f = form or self.form
        s = np.array([m.bpb(flops) for m in self.form_samples.get(f, ())])
        point = float(self.models[f].bpb(flops))
        return Interval.from_samples(point, s, level, nan_is_unbounded=True)

    def flops_samples(self, bpb: float, form: str | None = None) -> np.ndarray:
        return np.array(
            [m.flops_for_bpb(bpb) for m in self.form_samples.get(form or self.form, ())]
        )

    def flops_for_bpb(self, bpb: float, level: float = LEVEL, form: str | None = None) -> Interval:
        point = self.models[form or self.form].flops_for_bpb(bpb)
        samples = self.flops_samples(bpb, form)
        return Interval.from_samples(point, samples, level, nan_is_unbounded=True)

    def describe(self) -> str:
        parts = []
        for name, law in self.models.items():
            floor = f"{law.E:.4g} + " if name == "floor" else ""
            mark = " (chosen)" if name == self.form else ""
            parts.append(
                f"{name}{mark}: bpb = {floor}{law.B:.4g}·C^-{law.beta:.4g}"
                + _score_text(self.forward_rmse.get(name, float("nan")))
            )
        if "floor" not in self.models:
            need = MIN_POINTS_PER_PARAM * BPB_PARAMS["floor"] + 1
            parts.append(f"floor: not tried (needs {need} runs at distinct budgets to be scored)")
        return "; ".join(parts)


def fit_bpb_law(flops, bpb, n_boot: int = 200, seed: int = 0) -> BpbFit:
    """Fit bpb(C) as a plain power law and, when the series is long enough for forward validation
    to score it, with a floor; keep the form with the lower forward error."""
    c, b = as_series(flops, "flops"), as_series(bpb, "bpb")
    if np.any(b <= 0):
        raise UserError("bpb values must be positive; check the series' bpb column")
    c, b = _sorted(c, b)
    forms = {f: (BPB_FORMS[f], (c, b), BPB_PARAMS[f]) for f in BPB_FORMS}
    scores = _forward_scores(forms, c, b, lambda m, x: m.bpb(x))
    # the floor is fitted only where it can be scored: a 3-parameter law on a series too short
    # to test it is how a floor "fitted at 0" ends up in a table
    keep = [f for f in BPB_FORMS if f == "plain" or scores[f] == scores[f]]
    models, samples = {}, {}
    for f in keep:
        models[f] = BPB_FORMS[f](c, b)
        samples[f] = _bootstrap(BPB_FORMS[f], (c, b), n_boot, seed, BPB_PARAMS[f] + 1)
    chosen = choose_form({f: scores[f] for f in keep}, "plain")
    rng = (float(c.min()), float(c.max()))
    return BpbFit(chosen, models, {f: scores[f] for f in keep}, samples, rng)


# ---------------------------------------------------------------------------------------------
# CORE against FLOPs


@dataclass
class CoreFit:
    """CORE against FLOPs: each form's point fit, forward RMSE and bootstrap refits; one chosen."""

    chosen: str
    models: dict  # form name -> PowerCore | TwoStepCore
    forward_rmse: dict[str, float]
    samples: dict = field(default_factory=dict)  # form name -> tuple of refits
    flops_range: tuple[float, float] = (float("nan"), float("nan"))

    @classmethod
    def from_law(cls, A: float, k: float) -> "CoreFit":
        """A published law (e.g. nanochat's 3.7555, 0.0344) as a fit without samples or data."""
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
            parts.append(f"{name}{mark}: {law}" + _score_text(self.forward_rmse[name]))
        return "; ".join(parts)


def fit_core_law(flops, core, bpb=None, n_boot: int = 200, seed: int = 0) -> CoreFit:
    """Fit the power form (and the two-step form when bpb is given), score both by forward
    validation, choose the lower forward error, bootstrap both."""
    c, y = as_series(flops, "flops"), as_series(core, "core")
    if bpb is None:
        c, y = _sorted(c, y)
        forms = {"power": (_fit_power, (c, y), POWER_PARAMS)}
    else:
        c, y, b = _sorted(c, y, as_series(bpb, "bpb"))
        bpb_form = fit_bpb_law(c, b, n_boot=0).form
        two_step_params = max(BPB_PARAMS[bpb_form], LOGISTIC_PARAMS)
        forms = {
            "power": (_fit_power, (c, y), POWER_PARAMS),
            "two-step": (_fit_two_step(bpb_form), (c, y, b), two_step_params),
        }
    scores = _forward_scores(forms, c, y, lambda m, x: m.core(x))
    models = {name: fit(*cols) for name, (fit, cols, _) in forms.items()}
    samples = {
        name: _bootstrap(fit, cols, n_boot, seed, n_params + 1)
        for name, (fit, cols, n_params) in forms.items()
    }
    chosen = choose_form(scores, "power")  # nanochat's form, and the fewest parameters
    return CoreFit(chosen, models, scores, samples, (float(c.min()), float(c.max())))


def _score_text(score: float) -> str:
    if score != score:
        return ", not scored (too few runs for forward validation)"
    return f", forward RMSE {score:.3g}"


def as_series(values, name: str) -> np.ndarray:
    """A 1-D float array of >= 2 finite values (FLOPs also positive), or a UserError naming it."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 2 or not np.all(np.isfinite(v)):
        raise UserError(f"{name}: need >= 2 finite values, got {v.size} ({values!r:.80})")
    if name == "flops" and np.any(v <= 0):
        raise UserError("flops must be positive (training FLOPs of each run)")
    return v
