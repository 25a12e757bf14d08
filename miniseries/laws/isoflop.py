"""isoFLOP fits (Hoffmann et al. 2022, "Approach 2"): per budget C, a parabola of loss against
log10 N whose vertex is N*(C); across budgets the power laws N* = k C^a, D* = k' C^b and
L* = k_L C^s. Intervals come from a seeded bootstrap over runs within each budget. numpy only.
"""

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from miniseries.config import check_convention
from miniseries.errors import UserError
from miniseries.laws.base import Interval, Prediction, Run, clean_json, group_budgets, n_label


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
class ScalingFit:
    """isoFLOP vertices and the power laws across budgets.

    The loss at the optimum is extrapolated as log-log linear, L* = k_L C^s, not as the saturating
    E' + A' C^-gamma: a sweep affords 3-5 budgets, which leaves a 3-parameter fit 0-2 degrees of
    freedom and E' unidentified, so its extrapolation is arbitrary. The line is honest over a
    decade or two but optimistic far out (it never flattens); the parametric fit, which has an
    irreducible loss E learned from every run, gives the saturating prediction.
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

    @property
    def ratio_trend(self) -> float:
        return self.d_law.exponent - self.n_law.exponent if self.n_law else math.nan

    def predict(self, budget: float) -> Prediction:
        if self.n_law is None:
            raise UserError("the isoFLOP fit needs at least 2 usable budgets to predict")
        lc, s = math.log10(budget), self.samples
        boot = {k: 10 ** (s[f"logk_{k}"] + s[f"exp_{k}"] * lc) for k in ("n", "d", "l")}
        return Prediction(
            budget=budget,
            n_opt=Interval.from_samples(float(self.n_law(budget)), boot["n"]),
            d_opt=Interval.from_samples(float(self.d_law(budget)), boot["d"]),
            loss=Interval.from_samples(float(self.loss_law(budget)), boot["l"]),
            method="isoflop",
            convention=self.convention,
            fit_budgets=tuple(v.budget for v in self.vertices if v.usable),
        )

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
        for name in ("n_law", "d_law", "loss_law"):
            d[name] = d[name].to_dict() if d[name] else None
        for name in ("ratio_interval", "ratio_trend_interval"):
            d[name] = d[name].to_dict()
        return clean_json(d)


# ---------------------------------------------------------------------------------------------
# isoFLOP parabolas


def fit_vertex(runs: list[Run], budget: float, convention: str = "total") -> IsoflopVertex:
    """Parabola of loss vs log10 N for one budget. D* interpolates log D vs log N in the budget,
    exact whatever FLOPs-per-token convention produced the runs."""
    x = np.log10([r.params for r in runs])
    y = np.array([r.loss for r in runs])
    z = np.log10([r.tokens for r in runs])
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
        d_opt=float(10 ** (icpt + slope * xv)),
        loss_opt=float(c0 + c1 * xv + c2 * xv * xv),
        n_points=len(runs),
        flags=tuple(flags),
        coeffs=(float(c2), float(c1), float(c0)),
        points=points,
        convention=convention,
    )


def _boot_vertices(v: IsoflopVertex, runs: list[Run], rng, n_boot: int):
    """Vertices of n_boot resamples (with replacement, within the budget), vectorised as
    weighted least squares with multinomial counts. Returns log10 N*, log10 D*, L*, valid."""
    x = np.log10([r.params for r in runs])
    xm = x.mean()
    x = x - xm  # centred for conditioning
    y = np.array([r.loss for r in runs])
    z = np.log10([r.tokens for r in runs])
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
        # log D vs log N, weighted linear
        slope = (pw[0] * (w @ (x * z)) - pw[1] * (w @ z)) / (pw[0] * pw[2] - pw[1] ** 2)
        icpt = ((w @ z) - slope * pw[1]) / pw[0]
    lv = c0 + c1 * xv + c2 * xv * xv
    dropped = {
        "under_3_sizes": int((sizes < 3).sum()),
        "no_minimum_inside": int(((sizes >= 3) & ~ok).sum()),
        "exactly_3_sizes": int((ok & (sizes == 3)).sum()),  # kept, but the parabola interpolates
    }
    return xv + xm, icpt + slope * xv, lv, ok, dropped


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
    runs: list[Run], convention: str = "total", n_bootstrap: int = 1000, seed: int = 0
) -> ScalingFit:
    """Vertices per budget, then N* = k C^a, D* = k' C^b, L* = k_L C^s over the usable ones."""
    check_convention(convention)
    groups = group_budgets(runs)
    vertices = tuple(fit_vertex(rs, c, convention) for c, rs in groups)
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
    boots = [_boot_vertices(v, rs, rng, n_bootstrap) for v, rs in good]
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
    )
