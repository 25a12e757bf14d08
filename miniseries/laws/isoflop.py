"""isoFLOP fits (Hoffmann et al. 2022, "Approach 2"): per budget C, a parabola of loss against
log10 N whose vertex is N*(C), and D*(C) = C / fpt(N*) with the family's FLOPs per token; across
budgets the power laws N* = k C^a, D* = k' C^b, and the loss at the optimum, floored:
L*(C) = E + k C^-gamma with E the parametric fit's irreducible loss (the pure power law
L* = k_L C^s is kept beside it, and shown where forward validation prefers it). Intervals come
from a seeded bootstrap over runs within each budget. numpy only.
"""

import math
from dataclasses import asdict, dataclass, field, fields, replace

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

    def loss_at(self, budget: float) -> float:
        """L*(C): the floored law when there is one, else the pure power law."""
        law = self.floor_law or self.loss_law
        return float(law(budget))

    @property
    def ratio_trend(self) -> float:
        return self.d_law.exponent - self.n_law.exponent if self.n_law else math.nan

    def predict(self, budget: float) -> Prediction:
        if self.n_law is None:
            raise UserError("the isoFLOP fit needs at least 2 usable budgets to predict")
        lc, s = math.log10(budget), self.samples
        boot = {k: 10 ** (s[f"logk_{k}"] + s[f"exp_{k}"] * lc) for k in ("n", "d", "l")}
        if self.floor_law is not None:
            boot["l"] = s["floor_E"] + 10 ** (s["logk_floor"] - s["gamma_floor"] * lc)
        return Prediction(
            budget=budget,
            n_opt=Interval.from_samples(float(self.n_law(budget)), boot["n"]),
            d_opt=Interval.from_samples(float(self.d_law(budget)), boot["d"]),
            loss=Interval.from_samples(self.loss_at(budget), boot["l"]),
            method="isoflop",
            convention=self.convention,
            fit_budgets=tuple(v.budget for v in self.vertices if v.usable),
        )

    def predict_power_law(self, budget: float) -> Prediction:
        """``predict`` with L* from the pure power law k C^s instead of the floored law."""
        lc, s = math.log10(budget), self.samples
        boot = 10 ** (s["logk_l"] + s["exp_l"] * lc)
        pred = self.predict(budget)
        why = (
            ""
            if self.floor_law is None
            else (
                ", preferred by forward validation"
                if not self.floor_law.preferred
                else ", forward validation prefers the floor"
            )
        )
        loss = Interval.from_samples(float(self.loss_law(budget)), boot)
        return replace(pred, loss=loss, method=f"isoflop, pure power-law L*{why}")

    def resample_note(self) -> str | None:
        """One line on what the bootstrap dropped, and why: resamples of a budget with fewer than
        3 distinct sizes (no parabola) or no minimum inside the sampled sizes, and those kept
        with exactly 3 sizes (the parabola then interpolates them: its vertex is noisy)."""
        per = [v for k, v in self.resamples.items() if isinstance(v, dict)]
        if not per:
            return None
        total = self.n_bootstrap * len(per)
        under = sum(p["under_3_sizes"] for p in per)
        nomin = sum(p["no_minimum_inside"] for p in per)
        three = sum(p["exactly_3_sizes"] for p in per)
        return (
            f"bootstrap: of {total} resampled profiles, {under} dropped (under 3 distinct sizes) "
            f"and {nomin} dropped (no minimum inside the sizes); {three} kept with exactly 3 "
            f"sizes; {self.resamples.get('lines_dropped', 0)} of {self.n_bootstrap} resamples "
            "left under 2 budgets for the power laws (dropped)"
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


def _boot_vertices(v: IsoflopVertex, runs: list[Run], rng, n_boot: int, fpt: FlopsPerToken):
    """Vertices of n_boot resamples (with replacement, within the budget), vectorised as
    weighted least squares with multinomial counts. Returns log10 N*, log10 D*, L*, valid."""
    x = np.log10([r.params for r in runs])
    xm = x.mean()
    x = x - xm  # centred for conditioning
    y = np.array([r.loss for r in runs])
    z = np.log10([r.flops for r in runs])
    n = len(runs)
    w = rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float)
    uniq, inv = np.unique(x, return_inverse=True)
    present = (w > 0) @ np.eye(len(uniq))[inv] > 0
    sizes = present.sum(1)
    ok = sizes >= 3
    pw = [w @ x**k for k in range(5)]  # sums of w x^k, each (B,)
    m = np.stack([np.stack(pw[i : i + 3], -1) for i in range(3)], -2)
    m[~ok] = np.eye(3)
    rhs = np.stack([w @ (y * x**k) for k in range(3)], -1)
    c0, c1, c2 = np.linalg.solve(m, rhs[..., None])[..., 0].T
    with np.errstate(divide="ignore", invalid="ignore"):
        xv = -c1 / (2 * c2)
        xs = np.where(w > 0, x, np.nan)
        ok &= (c2 > 0) & (xv >= np.nanmin(xs, 1)) & (xv <= np.nanmax(xs, 1))
        # log FLOPs vs log N, weighted linear
        slope = (pw[0] * (w @ (x * z)) - pw[1] * (w @ z)) / (pw[0] * pw[2] - pw[1] ** 2)
        icpt = ((w @ z) - slope * pw[1]) / pw[0]
    lv = c0 + c1 * xv + c2 * xv * xv
    dropped = {
        "under_3_sizes": int((sizes < 3).sum()),
        "no_minimum_inside": int(((sizes >= 3) & ~ok).sum()),
        "exactly_3_sizes": int((ok & (sizes == 3)).sum()),  # kept, but the parabola interpolates
    }
    log_d = icpt + slope * xv - fpt.log_at((xv + xm) * np.log(10)) / np.log(10)
    return xv + xm, log_d, lv, ok, dropped


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
    boots = [_boot_vertices(v, rs, rng, n_bootstrap, fpt) for v, rs in good]
    mask = np.stack([b[3] for b in boots], 1)
    resamples = {f"{v.budget:.4g}": b[4] for (v, _), b in zip(good, boots)}
    resamples["lines_dropped"] = int((mask.sum(1) < 2).sum())  # under 2 valid budgets: no line
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
    if len(lc) >= 3:
        fit_on = np.arange(len(lc)) < len(lc) - 1
        fi, fg = _floor_line(lc, loss[None, :], np.array([e]), fit_on[None, :])
        pi, ps = _line(lc, np.log10(loss)[None, :], fit_on[None, :])
        floored = e + 10 ** (fi[0] - fg[0] * lc[-1])
        power = 10 ** (pi[0] + ps[0] * lc[-1])
        err_f, err_p = abs(math.log(floored / loss[-1])), abs(math.log(power / loss[-1]))
        preferred = not err_p < err_f
        validation = {
            "scored_budget": float(10 ** lc[-1]),
            "measured": float(loss[-1]),
            "floored": float(floored),
            "power_law": float(power),
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
