"""isoFLOP fits (Hoffmann et al. 2022, "Approach 2"): per budget C, a parabola of loss against
log10 N whose vertex is N*(C), and D*(C) = C / fpt(N*) with the family's FLOPs per token; across
budgets the power laws N* = k C^a, D* = k' C^b, and the loss at the optimum, floored:
L*(C) = E + k C^-gamma with E the parametric fit's irreducible loss (the pure power law
L* = k_L C^s is kept beside it, and shown where forward validation prefers it). Intervals come
from a seeded residual bootstrap on the fixed design (the runs' sizes kept, their noise
resampled), in which a vertex that leaves the sizes is censored at the edge. numpy only.
"""

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from miniseries.config import check_convention
from miniseries.errors import UserError
from miniseries.laws.base import Interval, Prediction, Run, clean_json, group_budgets, n_label
from miniseries.laws.fpt import FlopsPerToken


@dataclass(frozen=True)
class IsoflopVertex:
    """The parabola fit of one budget; flags say why it must not be used (empty = usable)."""

    budget: float
    n_opt: float
    d_opt: float
    loss_opt: float
    n_points: int
    flags: tuple[str, ...]
    coeffs: tuple[float, float, float]  # loss = c2 x^2 + c1 x + c0, x = log10 N
    points: tuple[tuple[float, float], ...]  # (N, loss) of the runs, for plots
    convention: str

    @property
    def usable(self) -> bool:
        return not self.flags

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("points")
        return clean_json(d | {"usable": self.usable, "n_label": n_label(self.convention)})


@dataclass(frozen=True)
class PowerLaw:
    """y = k C^exponent, fitted by least squares in log10-log10; ``interval``: the exponent's
    bootstrap confidence interval."""

    what: str
    k: float
    exponent: float
    interval: Interval  # of the exponent
    n_points: int
    convention: str

    def __call__(self, flops):
        return self.k * np.asarray(flops, float) ** self.exponent

    def to_dict(self) -> dict:
        return clean_json(asdict(self))


@dataclass(frozen=True)
class FlooredLaw:
    """L*(C) = E + k C^-gamma: the optimum's loss, which never goes below the irreducible E.

    E comes from the parametric fit (every run informs it); k and gamma are the least-squares
    line of log10(L* - E) against log10 C over the vertices above E. ``interval``: gamma's
    bootstrap confidence interval (each resample's vertices with a parametric resample's E)."""

    E: float
    k: float
    gamma: float
    interval: Interval  # of gamma
    n_points: int
    preferred: bool  # forward validation (fit the smaller budgets, predict the largest) favours it
    validation: dict  # the forward-validation errors of both forms, or why there was none

    def __call__(self, flops):
        return self.E + self.k * np.asarray(flops, float) ** -self.gamma

    def to_dict(self) -> dict:
        return clean_json(asdict(self))


@dataclass(frozen=True)
class ScalingFit:
    """isoFLOP vertices and the power laws across budgets.

    The loss at the optimum: with a parametric fit, the floored L* = E + k C^-gamma (E from it,
    not from the 3-5 vertices, which leave E unidentified); without one, the pure power law
    L* = k_L C^s, honest over a decade or two but optimistic far out (it never flattens).
    """

    convention: str
    vertices: tuple[IsoflopVertex, ...]
    n_law: PowerLaw | None
    d_law: PowerLaw | None
    loss_law: PowerLaw | None
    ratio: float  # D*/N* at the geometric-mean usable budget
    ratio_budget: float
    ratio_interval: Interval
    ratio_trend_interval: Interval  # of b - a: the ratio grows as C^(b - a)
    n_bootstrap: int
    samples: dict = field(default_factory=dict, repr=False, compare=False)
    # resamples dropped per budget and why, and lines left with under 2 budgets (_boot_vertices)
    resamples: dict = field(default_factory=dict, compare=False)
    floor_law: FlooredLaw | None = None
    fpt: FlopsPerToken | None = field(default=None, compare=False)

    @property
    def floored(self) -> bool:
        """Whether L*(C) is the floored law: there is one and forward validation over the
        budgets (rolling origin, FlooredLaw.validation) does not prefer the pure power law.
        The rule is in code so no data set's outcome picks the form by hand."""
        return self.floor_law is not None and self.floor_law.preferred

    def loss_at(self, budget: float) -> float:
        """L*(C) by the form forward validation prefers (``floored``)."""
        law = self.floor_law if self.floored else self.loss_law
        return float(law(budget))

    @property
    def ratio_trend(self) -> float:
        return self.d_law.exponent - self.n_law.exponent if self.n_law else math.nan

    def predict(self, budget: float) -> Prediction:
        """N*, D* and L* at ``budget`` with bootstrap CIs; L* by the preferred form."""
        return self.predict_form(budget, self.floored)

    def predict_form(self, budget: float, floored: bool) -> Prediction:
        """``predict`` with L* from the floored law (``floored``, when there is one) or the pure
        power law k C^s; a form that is not the preferred one says so in its method."""
        if self.n_law is None:
            raise UserError("the isoFLOP fit needs at least 2 usable budgets to predict")
        floored = floored and self.floor_law is not None
        lc, s = math.log10(budget), self.samples
        boot = {k: 10 ** (s[f"logk_{k}"] + s[f"exp_{k}"] * lc) for k in ("n", "d", "l")}
        point = float(self.loss_law(budget))
        if floored:
            boot["l"] = s["floor_E"] + 10 ** (s["logk_floor"] - s["gamma_floor"] * lc)
            point = float(self.floor_law(budget))
        method = "isoflop"
        if floored != self.floored:
            method += ", floored L*" if floored else ", pure power-law L*"
            method += ", not the form forward validation prefers"
        return Prediction(
            budget=budget,
            n_opt=Interval.from_samples(float(self.n_law(budget)), boot["n"]),
            d_opt=Interval.from_samples(float(self.d_law(budget)), boot["d"]),
            loss=Interval.from_samples(point, boot["l"]),
            method=method,
            convention=self.convention,
            fit_budgets=tuple(v.budget for v in self.vertices if v.usable),
        )

    def predict_power_law(self, budget: float) -> Prediction:
        """``predict`` with L* from the pure power law k C^s."""
        return self.predict_form(budget, False)

    def predict_floored(self, budget: float) -> Prediction:
        """``predict`` with L* from the floored law (the pure power law without one)."""
        return self.predict_form(budget, True)

    def resample_note(self) -> str | None:
        """One line on the bootstrap when it had to do something a reader should know: censor
        resampled vertices at the edge of the sizes, or draw no noise at all (no residuals)."""
        if "censored_at_edge" not in self.resamples:
            return None
        per = self.resamples["censored_at_edge"]
        censored, total = sum(per.values()), self.n_bootstrap * len(per)
        if not self.resamples["residuals"]:
            return (
                "bootstrap: no residual degrees of freedom (every budget has 3 sizes or fewer "
                "than 4 runs): the intervals carry no run noise; sweep more sizes per budget"
            )
        if not censored:
            return None
        return (
            f"bootstrap (residuals on the fixed design): {censored} of {total} resampled "
            "profiles had no minimum inside the sampled sizes and were censored at the edge"
        )

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        d |= {"n_label": n_label(self.convention), "ratio_trend": self.ratio_trend}
        d["vertices"] = [v.to_dict() for v in self.vertices]
        d["fpt"] = self.fpt.to_dict() if self.fpt else None
        for name in ("n_law", "d_law", "loss_law", "floor_law"):
            d[name] = d[name].to_dict() if d[name] else None
        for name in ("ratio_interval", "ratio_trend_interval"):
            d[name] = d[name].to_dict()
        return clean_json(d)


# ---------------------------------------------------------------------------------------------
# isoFLOP parabolas


def fit_vertex(
    runs: list[Run], budget: float, convention: str = "total", fpt: FlopsPerToken | None = None
) -> IsoflopVertex:
    """Parabola of loss vs log10 N for one budget. D* = C(N*) / fpt(N*): the budget's FLOPs (a
    line of log FLOPs vs log N through its runs, which spend C to within a step) over the FLOPs
    per token at N* (default: interpolated between the runs' own flops / tokens)."""
    fpt = fpt or FlopsPerToken.from_runs(runs)
    x = np.log10([r.params for r in runs])
    y = np.array([r.loss for r in runs])
    z = np.log10([r.flops for r in runs])
    points = tuple((float(r.params), float(r.loss)) for r in runs)
    flags = []
    if len(np.unique(x)) < 3:
        flags.append(f"only {len(np.unique(x))} model size(s): a parabola needs 3")
        return IsoflopVertex(
            budget,
            math.nan,
            math.nan,
            math.nan,
            len(runs),
            tuple(flags),
            (math.nan,) * 3,
            points,
            convention,
        )
    c2, c1, c0 = np.polyfit(x, y, 2)
    xv = -c1 / (2 * c2) if c2 != 0 else math.nan
    if not c2 > 0:
        flags.append("not upward-opening (curvature <= 0): no minimum")
    elif not x.min() <= xv <= x.max():
        flags.append("vertex outside the sampled sizes (minimum at the edge): widen the sweep")
    elif np.argmin(y) in (np.argmin(x), np.argmax(x)):
        flags.append("lowest loss at the smallest/largest size (minimum at the edge): widen it")
    slope, icpt = np.polyfit(x, z, 1)
    return IsoflopVertex(
        budget=budget,
        n_opt=float(10**xv),
        d_opt=float(10 ** (icpt + slope * xv) / fpt(10**xv)),
        loss_opt=float(c0 + c1 * xv + c2 * xv * xv),
        n_points=len(runs),
        flags=tuple(flags),
        coeffs=(float(c2), float(c1), float(c0)),
        points=points,
        convention=convention,
    )


def profile_residuals(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(smooth fitted values, leverage-scaled residuals, residual dof) of one budget's profile
    of loss against x = log10 N.

    With 5+ distinct sizes the smooth curve is a cubic, so its residuals are the runs' noise and
    not the parabola's lack of fit (an asymmetric profile is a systematic shape, not scatter);
    with fewer it is the parabola. Residuals are divided by sqrt(1 - h) (h: the hat matrix's
    diagonal) so that their variance is the noise's, not the shrunken in-sample one."""
    deg = 3 if len(np.unique(x)) >= 5 else 2
    design = np.vander(x - x.mean(), deg + 1)
    hat = design @ np.linalg.pinv(design)
    fitted = hat @ y
    dof = len(x) - deg - 1
    if dof <= 0:
        return fitted, np.zeros(0), 0
    scale = np.sqrt(np.clip(1 - np.diag(hat), 1e-12, None))
    return fitted, (y - fitted) / scale, dof


def _pooled_residuals(groups) -> np.ndarray:
    """Every usable budget's scaled residuals of log loss in one centred pool (budget by budget,
    run by run, so two lines on the same design index the same cells). In log loss because a
    run's noise scales with its loss (the Huber objective's premise too): pooling absolute
    residuals would overstate the noise of the low-loss budgets, where N* is least curved."""
    pool = [profile_residuals(np.log10([r.params for r in rs]), np.log([r.loss for r in rs]))[1]
            for rs in groups]  # fmt: skip
    dof = sum(profile_residuals(np.log10([r.params for r in rs]), np.zeros(len(rs)))[2]
              for rs in groups)  # fmt: skip
    pool = np.concatenate(pool) if pool else np.zeros(0)
    return (pool - pool.mean() if pool.size else pool), dof


def _small_sample_factor(dof: int, level: float = 0.9) -> float:
    """t_dof / z at the interval's level: the residuals estimate the noise with few degrees of
    freedom (3 at the demo's 3 budgets x 5 sizes), and a percentile bootstrap that takes them
    as exact under-covers as a z interval does where a t interval belongs. ~1 with many."""
    from scipy.stats import norm, t

    q = (1 + level) / 2
    return float(t.ppf(q, dof) / norm.ppf(q)) if dof > 0 else 1.0


def _boot_vertices(runs: list[Run], pool: np.ndarray, rng, n_boot: int, fpt: FlopsPerToken):
    """Vertices of n_boot residual-bootstrap resamples on the budget's fixed design: the runs'
    sizes are kept, each log loss is its smooth fitted value plus a residual drawn from the pool,
    and a parabola is refitted. A vertex outside the sampled sizes (or a profile without a
    minimum) is censored at the edge, the lowest end of the refitted parabola, not dropped:
    dropping it would cut the interval's tails. Returns log10 N*, log10 D*, L*, censored."""
    x = np.log10([r.params for r in runs])
    xm = x.mean()
    x = x - xm  # centred for conditioning
    y = np.array([r.loss for r in runs])
    z = np.log10([r.flops for r in runs])
    fitted, _, _ = profile_residuals(x + xm, np.log(y))
    shape = (n_boot, len(x))
    noise = pool[rng.integers(0, pool.size, shape)] if pool.size else np.zeros(shape)
    ys = np.exp(fitted[None, :] + noise)
    c2, c1, c0 = (ys @ np.linalg.pinv(np.vander(x, 3)).T).T
    lo, hi = x.min(), x.max()
    with np.errstate(divide="ignore", invalid="ignore"):
        xv = np.where(c2 > 0, -c1 / (2 * c2), np.nan)
    edge = np.where(c2 * lo * lo + c1 * lo < c2 * hi * hi + c1 * hi, lo, hi)
    censored = ~(xv >= lo) | ~(xv <= hi)
    xv = np.where(censored, np.where(np.isnan(xv), edge, np.clip(xv, lo, hi)), xv)
    lv = c0 + c1 * xv + c2 * xv * xv
    slope, icpt = np.polyfit(x, z, 1)  # the budget's FLOPs vs N: fixed by the design
    log_d = icpt + slope * xv - fpt.log_at((xv + xm) * np.log(10)) / np.log(10)
    return xv + xm, log_d, lv, censored


def _line(x, y, mask):
    """Least-squares y = i + s x per row of y (B, m) over masked columns; NaN with < 2 points."""
    mf = mask.astype(float)
    cnt = mf.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xb = (mf * x).sum(1) / cnt
        yb = np.where(mask, y, 0).sum(1) / cnt
        dx = np.where(mask, x - xb[:, None], 0)
        s = (dx * np.where(mask, y - yb[:, None], 0)).sum(1) / (dx * dx).sum(1)
    s[cnt < 2] = np.nan
    return yb - s * xb, s


def fit_isoflop(
    runs: list[Run],
    convention: str = "total",
    n_bootstrap: int = 1000,
    seed: int = 0,
    fpt: FlopsPerToken | None = None,
    floor: tuple[float, np.ndarray] | None = None,
) -> ScalingFit:
    """Vertices per budget, then N* = k C^a, D* = k' C^b, L* = k_L C^s over the usable ones.

    ``fpt``: FLOPs per token vs N (default: the runs' own). ``floor``: the irreducible loss E and
    its bootstrap samples (a parametric fit's), for the floored L* = E + k C^-gamma."""
    check_convention(convention)
    fpt = fpt or FlopsPerToken.from_runs(runs)
    groups = group_budgets(runs)
    vertices = tuple(fit_vertex(rs, c, convention, fpt) for c, rs in groups)
    good = [(v, rs) for v, (_, rs) in zip(vertices, groups) if v.usable]
    if len(good) < 2:
        none = Interval(math.nan, math.nan, math.nan)
        return ScalingFit(convention, vertices, None, None, None, math.nan, math.nan, none, none, 0)
    lc = np.log10([v.budget for v, _ in good])
    cols = {
        "n": np.log10([v.n_opt for v, _ in good]),
        "d": np.log10([v.d_opt for v, _ in good]),
        "l": np.log10([v.loss_opt for v, _ in good]),
    }
    rng = np.random.default_rng(seed)
    pool, dof = _pooled_residuals([rs for _, rs in good])
    pool = pool * _small_sample_factor(dof)
    boots = [_boot_vertices(rs, pool, rng, n_bootstrap, fpt) for _, rs in good]
    mask = np.ones((n_bootstrap, len(good)), bool)
    resamples = {
        "method": "residual bootstrap on the fixed design",
        "residuals": int(pool.size),
        "residual_dof": int(dof),
        "censored_at_edge": {f"{v.budget:.4g}": int(b[3].sum()) for (v, _), b in zip(good, boots)},
    }
    boot_cols = {
        "n": np.stack([b[0] for b in boots], 1),
        "d": np.stack([b[1] for b in boots], 1),
        "l": np.log10(np.clip(np.stack([b[2] for b in boots], 1), 1e-12, None)),
    }
    samples, laws = {}, {}
    names = {"n": n_label(convention) + " at optimum", "d": "D (tokens) at optimum", "l": "loss"}
    for key, y in cols.items():
        i, s = _line(lc, y[None, :], np.ones((1, len(lc)), bool))
        bi, bs = _line(lc, boot_cols[key], mask)
        samples[f"logk_{key}"], samples[f"exp_{key}"] = bi, bs
        laws[key] = PowerLaw(
            names[key],
            float(10 ** i[0]),
            float(s[0]),
            Interval.from_samples(float(s[0]), bs),
            len(lc),
            convention,
        )
    lg = float(lc.mean())
    boot_ratio = 10 ** (
        samples["logk_d"] - samples["logk_n"] + lg * (samples["exp_d"] - samples["exp_n"])
    )
    ratio = laws["d"](10**lg) / laws["n"](10**lg)
    return ScalingFit(
        convention=convention,
        vertices=vertices,
        n_law=laws["n"],
        d_law=laws["d"],
        loss_law=laws["l"],
        ratio=float(ratio),
        ratio_budget=float(10**lg),
        ratio_interval=Interval.from_samples(float(ratio), boot_ratio),
        ratio_trend_interval=Interval.from_samples(
            laws["d"].exponent - laws["n"].exponent, samples["exp_d"] - samples["exp_n"]
        ),
        n_bootstrap=n_bootstrap,
        samples=samples,
        resamples=resamples,
        floor_law=_floor(lc, 10 ** cols["l"], 10 ** boot_cols["l"], mask, floor, samples),
        fpt=fpt,
    )


def _floor_line(lc, loss, e, mask):
    """(log10 k, gamma) of log10(L* - E) = log10 k - gamma log10 C per row, over the masked
    budgets with L* > E (NaN with fewer than 2)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.log10(loss - e[:, None])
    ok = mask & np.isfinite(y)
    i, s = _line(lc, np.where(ok, y, 0.0), ok)
    return i, -s


def _floor(lc, loss, boot_loss, mask, floor, samples) -> FlooredLaw | None:
    """The floored L*(C) with E given, its bootstrap, and forward validation against the pure
    power law: both fitted on all budgets but the largest, scored on the largest's L*."""
    if floor is None:
        return None
    e, e_samples = float(floor[0]), np.asarray(floor[1], float)
    above = loss > e
    if above.sum() < 2:
        return None
    i, g = _floor_line(lc, loss[None, :], np.array([e]), np.ones((1, len(lc)), bool))
    n = min(len(e_samples), len(boot_loss))
    bi, bg = _floor_line(lc, boot_loss[:n], e_samples[:n], mask[:n])
    samples |= {"floor_E": e_samples[:n], "logk_floor": bi, "gamma_floor": bg}
    validation = {"why": "forward validation needs 3 usable budgets"}
    preferred = True
    if len(lc) >= 3:  # rolling origin: fit budgets < k, score every larger one's L*
        err_f = err_p = 0.0
        for k in range(2, len(lc)):
            fit_on = np.arange(len(lc)) < k
            fi, fg = _floor_line(lc, loss[None, :], np.array([e]), fit_on[None, :])
            pi, ps = _line(lc, np.log10(loss)[None, :], fit_on[None, :])
            floored = e + 10 ** (fi[0] - fg[0] * lc[k:])
            power = 10 ** (pi[0] + ps[0] * lc[k:])
            err_f += float(np.sum(np.abs(np.log(floored / loss[k:]))))
            err_p += float(np.sum(np.abs(np.log(power / loss[k:]))))
        preferred = not err_p < err_f
        validation = {
            "forecasts": int((len(lc) - 2) * (len(lc) - 1) / 2),
            "floored_abs_log_error": err_f,
            "power_law_abs_log_error": err_p,
        }
    return FlooredLaw(
        E=e,
        k=float(10 ** i[0]),
        gamma=float(g[0]),
        interval=Interval.from_samples(float(g[0]), bg),
        n_points=int(above.sum()),
        preferred=preferred,
        validation=validation,
    )
