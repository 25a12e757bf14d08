"""Scaling-law fits over finished runs: numpy and scipy only, no torch.

Two independent routes to the compute-optimal allocation (Hoffmann et al. 2022):

- isoFLOP (their "Approach 2"): per budget C, a parabola of loss against log10 N; its vertex is
  N*(C). Power laws across budgets: N* = k C^a, D* = k' C^b, and L* = k_L C^s.
- parametric ("Approach 3"): L(N, D) = E + A/N^alpha + B/D^beta fitted to every run with a Huber
  loss on log-loss residuals, written as LSE(a - alpha log N, b - beta log D, e) as Epoch AI's
  replication does, from Epoch's grid of starts (miniseries/parametric.py).

Uncertainty is a seeded bootstrap over runs (percentile 90% intervals). The parameter-count
convention (total / kaplan / matrices) is only a label here: the caller's params already use it,
and every result object carries it so that no number is ever printed without it.
"""

import csv
import math
import os
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from miniseries.config import check_convention
from miniseries.errors import UserError

LEVEL = 0.90  # width of every bootstrap interval

CONVENTION_NAMES = {
    "total": "total params",
    "kaplan": "non-embedding params",
    "matrices": "matrix params",
}


def n_label(convention: str) -> str:
    """'N (total params)': the label every printed parameter count carries."""
    return f"N ({CONVENTION_NAMES[check_convention(convention)]})"


# ---------------------------------------------------------------------------------------------
# Runs


@dataclass(frozen=True)
class Run:
    """One finished training run. params counts the convention the fit is told about."""

    params: float
    tokens: float
    flops: float
    loss: float
    budget: float | None = None
    depth: int | None = None
    name: str | None = None


def _cell(path, line: int, column: str, text: str | None, positive: bool = True) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(
            f"{path}: line {line}: column {column!r} is not a number: {text!r}"
        ) from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise UserError(
            f"{path}: line {line}: column {column!r} must be a positive finite number, got {text!r}"
        )
    return value


def runs_from_csv(path: str | os.PathLike, convention: str = "total") -> list[Run]:
    """Read runs from a CSV: params, loss, tokens and/or flops, optional budget, depth, name.

    A column ``params_<convention>`` (e.g. params_kaplan) wins over ``params`` when present.
    """
    check_convention(convention)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise UserError(f"no such runs file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:  # a folder, no permission, not text
        reason = getattr(e, "strerror", None) or "not UTF-8 text"
        raise UserError(f"cannot read runs file {path} ({reason}); give a CSV file") from None
    if not rows:
        raise UserError(f"{path}: no runs (need a header line and one line per run)")
    columns = {(c or "").strip().lower(): c for c in rows[0]}
    p_col = f"params_{convention}" if f"params_{convention}" in columns else "params"
    missing = [c for c in (p_col, "loss") if c not in columns]
    if not ("tokens" in columns or "flops" in columns):
        missing.append("tokens or flops")
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; need params, loss, and tokens or "
            f"flops (optional: budget, depth, name); found: {', '.join(columns)}"
        )

    def get(row, name):
        text = row.get(columns.get(name, ""), None)
        return None if text is None or not text.strip() else text.strip()

    runs = []
    for line, row in enumerate(rows, start=2):
        n = _cell(path, line, p_col, get(row, p_col))
        loss = _cell(path, line, "loss", get(row, "loss"))
        d_text, c_text = get(row, "tokens"), get(row, "flops")
        if d_text is None and c_text is None:
            raise UserError(f"{path}: line {line}: needs a value in 'tokens' or 'flops'")
        d = _cell(path, line, "tokens", d_text) if d_text is not None else None
        c = _cell(path, line, "flops", c_text) if c_text is not None else 6 * n * d
        d = c / (6 * n) if d is None else d
        b_text, depth = get(row, "budget"), get(row, "depth")
        runs.append(
            Run(
                params=n,
                tokens=d,
                flops=c,
                loss=loss,
                budget=None if b_text is None else _cell(path, line, "budget", b_text),
                depth=None if depth is None else int(_cell(path, line, "depth", depth)),
                name=get(row, "name"),
            )
        )
    return runs


def drop_worst(runs: list[Run], k: int) -> list[Run]:
    """Drop the k runs of highest loss (Epoch drops 5 of Chinchilla's 245 as outliers)."""
    if k < 0 or k >= len(runs) - 1:
        raise UserError(f"--drop-worst must be from 0 to {max(0, len(runs) - 2)}, got {k}")
    if k == 0:
        return list(runs)
    keep = np.sort(np.argsort([r.loss for r in runs], kind="stable")[: len(runs) - k])
    return [runs[i] for i in keep]


def group_budgets(runs: list[Run]) -> list[tuple[float, list[Run]]]:
    """Runs per compute budget, ascending. Without a budget field, flops rounded to 2 sig. figs.

    A group's C is its stated budget, else the geometric mean of its runs' FLOPs.
    """
    groups: dict[float, list[Run]] = {}
    for r in runs:
        key = r.budget if r.budget is not None else float(f"{r.flops:.2g}")
        groups.setdefault(key, []).append(r)
    out = []
    for key in sorted(groups):
        rs = groups[key]
        stated = rs[0].budget is not None
        c = key if stated else float(np.exp(np.mean([math.log(r.flops) for r in rs])))
        out.append((c, rs))
    return out


# ---------------------------------------------------------------------------------------------
# Result types


def _clean(x):
    """JSON-safe: numpy scalars to float, NaN/inf to None, tuples to lists."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _interval(samples) -> tuple[float, float]:
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if s.size < 2:
        return (math.nan, math.nan)
    lo, hi = np.percentile(s, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return (float(lo), float(hi))


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
        return _clean(d | {"usable": self.usable, "n_label": n_label(self.convention)})


@dataclass(frozen=True)
class PowerLaw:
    """y = k C^exponent, fitted by least squares in log10-log10; intervals are bootstrap 90%."""

    what: str
    k: float
    exponent: float
    interval: tuple[float, float]  # of the exponent
    n_points: int
    convention: str

    def __call__(self, flops):
        return self.k * np.asarray(flops, float) ** self.exponent

    def to_dict(self) -> dict:
        return _clean(asdict(self))


@dataclass(frozen=True)
class Prediction:
    """Compute-optimal N, D and the expected loss at one budget, with 90% intervals."""

    budget: float
    n_opt: float
    d_opt: float
    loss: float
    n_interval: tuple[float, float]
    d_interval: tuple[float, float]
    loss_interval: tuple[float, float]
    method: str
    convention: str

    def to_dict(self) -> dict:
        return _clean(asdict(self) | {"n_label": n_label(self.convention)})


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
    ratio_interval: tuple[float, float]
    ratio_trend_interval: tuple[float, float]  # of b - a: the ratio grows as C^(b - a)
    n_bootstrap: int
    samples: dict = field(default_factory=dict, repr=False, compare=False)

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
            n_opt=float(self.n_law(budget)),
            d_opt=float(self.d_law(budget)),
            loss=float(self.loss_law(budget)),
            n_interval=_interval(boot["n"]),
            d_interval=_interval(boot["d"]),
            loss_interval=_interval(boot["l"]),
            method="isoflop",
            convention=self.convention,
        )

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        d |= {"n_label": n_label(self.convention), "ratio_trend": self.ratio_trend}
        d["vertices"] = [v.to_dict() for v in self.vertices]
        for name in ("n_law", "d_law", "loss_law"):
            d[name] = d[name].to_dict() if d[name] else None
        return _clean(d)


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
    ok = present.sum(1) >= 3
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
    return xv + xm, icpt + slope * xv, lv, ok


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
    nan2 = (math.nan, math.nan)
    if len(good) < 2:
        return ScalingFit(convention, vertices, None, None, None, math.nan, math.nan, nan2, nan2, 0)
    lc = np.log10([v.budget for v, _ in good])
    cols = {
        "n": np.log10([v.n_opt for v, _ in good]),
        "d": np.log10([v.d_opt for v, _ in good]),
        "l": np.log10([v.loss_opt for v, _ in good]),
    }
    rng = np.random.default_rng(seed)
    boots = [_boot_vertices(v, rs, rng, n_bootstrap) for v, rs in good]
    mask = np.stack([b[3] for b in boots], 1)
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
            names[key], float(10 ** i[0]), float(s[0]), _interval(bs), len(lc), convention
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
        ratio_interval=_interval(boot_ratio),
        ratio_trend_interval=_interval(samples["exp_d"] - samples["exp_n"]),
        n_bootstrap=n_bootstrap,
        samples=samples,
    )


# ---------------------------------------------------------------------------------------------
# Both together


@dataclass(frozen=True)
class Laws:
    """Everything `miniseries fit` reports; either fit may be None, with the reason in notes."""

    convention: str
    n_runs: int
    isoflop: ScalingFit
    parametric: "ParametricFit | None"  # miniseries.parametric
    notes: tuple[str, ...] = ()

    def predict(self, budget: float) -> list[Prediction]:
        out = [self.isoflop.predict(budget)] if self.isoflop.n_law else []
        return out + ([self.parametric.predict(budget)] if self.parametric else [])

    def to_dict(self) -> dict:
        return {
            "convention": self.convention,
            "n_label": n_label(self.convention),
            "n_runs": self.n_runs,
            "isoflop": self.isoflop.to_dict(),
            "parametric": self.parametric.to_dict() if self.parametric else None,
            "notes": list(self.notes),
        }


def fit_laws(
    runs: list[Run], convention: str = "total", n_bootstrap: int = 1000, seed: int = 0
) -> Laws:
    """The isoFLOP route and the parametric route on the same runs."""
    if not runs:
        raise UserError("no runs to fit")
    if n_bootstrap < 0:
        raise UserError(f"bootstrap resamples must be >= 0, got {n_bootstrap}")
    iso = fit_isoflop(runs, convention, n_bootstrap, seed)
    notes = []
    if iso.n_law is None:
        usable = sum(v.usable for v in iso.vertices)
        notes.append(f"isoFLOP power laws need 2 usable budgets, have {usable}")
    par = None
    n_budgets = len(group_budgets(runs))
    if len(runs) >= 6 and n_budgets >= 2:
        par = fit_parametric(runs, convention, n_bootstrap, seed)
    else:  # at one budget N and D are tied (D = C/6N): A/N^alpha and B/D^beta can't be told apart
        have = f"have {len(runs)} in {n_budgets}"
        notes.append(f"parametric fit needs 6 runs over 2+ budgets, {have}")
    return Laws(convention, len(runs), iso, par, tuple(notes))


CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al.


def synthetic_runs(
    budgets,
    per_budget: int = 9,
    span: float = 0.6,
    noise: float = 0.003,
    law: dict = CHINCHILLA,
    seed: int = 0,
) -> list[Run]:
    """isoFLOP runs drawn from a known L(N, D) with multiplicative log-normal noise: N spaced
    evenly in log10 over optimum x 10^[-span, span] at each budget, D = C / 6N. For tests, demos
    and benchmarks: the true optimum is N = G (C/6)^a with a = beta / (alpha + beta)."""
    from miniseries.parametric import _optimum as parametric_optimum

    rng = np.random.default_rng(seed)
    E, A, B, al, be = (law[k] for k in ("E", "A", "B", "alpha", "beta"))
    runs = []
    for c in budgets:
        n_opt, _, _ = parametric_optimum((A, B, E, al, be), c, 6.0)
        for n in n_opt * 10 ** np.linspace(-span, span, per_budget):
            d = c / (6 * n)
            loss = (E + A / n**al + B / d**be) * math.exp(noise * rng.standard_normal())
            runs.append(Run(float(n), float(d), float(c), float(loss), budget=float(c)))
    return runs


# The parametric fit lives in its own module; it builds on the types above, so it is imported last.
from miniseries.parametric import ParametricFit, fit_parametric  # noqa: E402,F401
