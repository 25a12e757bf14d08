"""Rolling-origin forward validation: would the fitted laws have predicted these runs' larger
budgets? numpy and scipy only, no torch.

Sort the usable budgets (those whose isoFLOP parabola has a vertex inside its sizes) by compute.
For each origin k = min_fit_budgets .. m-1, fit the laws (``fit_laws``) on every run at or below
the k-th usable budget, as a user would have had them, and predict the measured vertex (L*, N*) of
every larger usable budget by each route:

- "isoflop (floored)": L* = E + k C^-gamma, E from the parametric (Huber) fit;
- "isoflop (power law)": the pure power law L* = k_L C^s;
- "isoflop, bias-corrected": the floored law with N* corrected for Approach 2's own bias;
- "parametric (huber)" / "parametric (squared)": the optimum of L(N, D) under each objective;
- "product PI (mixture)": the product's own prediction interval (laws/outcome.py), L* only.

Each route gets a prediction interval (PI) of the *measured* vertex: its bootstrap draws of the
expected L* at C plus Student-t draws of the vertex's measurement noise (pooled run scatter
around the parabolas, times the leverage of the target's sizes at the route's N*). It is scored
by coverage and by the interval score (Gneiting & Raftery 2007), which is proper: a wider
interval is never mistaken for a better one. ``choose_route`` picks a route by that evidence.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np

from miniseries.errors import UserError
from miniseries.laws import Laws, fit_laws
from miniseries.laws.base import LEVEL, PREDICTION, Interval, Run, clean_json, group_budgets
from miniseries.laws.fpt import FlopsPerToken
from miniseries.laws.isoflop import fit_vertex
from miniseries.laws.outcome import centre_route, leverage, outcome_interval, run_noise

FLOORED = "isoflop (floored)"
POWER = "isoflop (power law)"
CORRECTED = "isoflop, bias-corrected"
PRODUCT = "product PI (mixture)"
# every route, in the order that breaks ties in ``choose_route``
ROUTES = (FLOORED, POWER, CORRECTED, "parametric (huber)", "parametric (squared)", PRODUCT)
QUANTITIES = {"loss": "interval_score", "n_opt": "n_log10_error"}
DRAWS = 4000  # Monte Carlo draws behind one route's PI (bootstrap draw + noise draw)
MAX_ORIGINS = 20  # more origins than this: evenly spaced in log budget, the last always kept


@dataclass(frozen=True)
class Forecast:
    """One route's forecast, fitted up to ``origin``, of the vertex measured at ``target``."""

    origin: float  # the largest budget fitted
    target: float
    decades: float  # log10(target / origin): how far past the data
    route: str
    loss: Interval  # the law's L* with its confidence interval
    loss_pi: Interval  # prediction interval of the measured vertex's L*
    measured_loss: float
    n_opt: Interval | None  # None for the product PI (it predicts L* only)
    measured_n: float

    @property
    def rel_error(self) -> float:
        """(predicted - measured) / measured of L*."""
        return self.loss.point / self.measured_loss - 1

    @property
    def n_log10_error(self) -> float:
        return math.log10(self.n_opt.point / self.measured_n) if self.n_opt else math.nan

    @property
    def pi_hit(self) -> bool | None:
        return self.loss_pi.contains(self.measured_loss) if self.loss_pi.bounded else None

    @property
    def interval_score(self) -> float:
        return interval_score(
            self.loss_pi.lo, self.loss_pi.hi, self.measured_loss, self.loss_pi.level
        )

    def to_dict(self) -> dict:
        return clean_json(
            {
                "origin": self.origin,
                "target": self.target,
                "decades": self.decades,
                "route": self.route,
                "loss": self.loss.to_dict(),
                "loss_pi": self.loss_pi.to_dict(),
                "measured_loss": self.measured_loss,
                "rel_error": self.rel_error,
                "n_opt": self.n_opt.to_dict() if self.n_opt else None,
                "measured_n": self.measured_n,
                "n_log10_error": self.n_log10_error,
                "pi_hit": self.pi_hit,
                "interval_score": self.interval_score,
            }
        )


def interval_score(lo: float, hi: float, y: float, level: float = LEVEL) -> float:
    """Gneiting & Raftery's (2007) interval score of the central ``level`` interval [lo, hi] for
    the outcome y: its width plus 2/alpha times how far y falls outside (alpha = 1 - level).
    Lower is better, and it is proper: the best interval to report is the true one."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return math.nan
    alpha = 1 - level
    return (hi - lo) + (2 / alpha) * max(lo - y, 0.0) + (2 / alpha) * max(y - hi, 0.0)


@dataclass(frozen=True)
class RouteSummary:
    """One route's record over every forecast it made."""

    route: str
    n: int
    loss_abs_error_pct: float  # mean |relative error| of L*, in %
    n_log10_error: float  # mean |log10(predicted / measured)| of N*; NaN: no N*
    coverage: float  # PI hits / forecasts with a bounded PI
    n_scored: int  # forecasts with a bounded PI
    interval_score: float  # mean interval score of the PI

    def to_dict(self) -> dict:
        return clean_json(self.__dict__)


def summarize(forecasts: list[Forecast]) -> dict[str, RouteSummary]:
    """Per route, in ROUTES order: the mean errors, PI coverage and mean interval score."""

    def mean(xs):
        xs = [x for x in xs if math.isfinite(x)]
        return float(np.mean(xs)) if xs else math.nan

    out = {}
    for route in ROUTES:
        fs = [f for f in forecasts if f.route == route]
        if not fs:
            continue
        hits = [f.pi_hit for f in fs if f.pi_hit is not None]
        out[route] = RouteSummary(
            route=route,
            n=len(fs),
            loss_abs_error_pct=100 * mean([abs(f.rel_error) for f in fs]),
            n_log10_error=mean([abs(f.n_log10_error) for f in fs]),
            coverage=sum(hits) / len(hits) if hits else math.nan,
            n_scored=len(hits),
            interval_score=mean([f.interval_score for f in fs]),
        )
    return out


def choose_route(summary: dict[str, RouteSummary], quantity: str = "loss") -> str | None:
    """The route that forecast best: for "loss" the lowest mean interval score of its PI (a proper
    score: accuracy and honest width together), for "n_opt" the lowest mean |log10 error| of N*.
    Ties go to the route listed first in ROUTES; None when no route has the number."""
    if quantity not in QUANTITIES:
        raise UserError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}")
    key = QUANTITIES[quantity]
    scored = [(getattr(s, key), ROUTES.index(r), r) for r, s in summary.items()]
    scored = [t for t in scored if math.isfinite(t[0])]
    return min(scored)[2] if scored else None


@dataclass(frozen=True)
class Validation:
    """Every forecast of a rolling-origin validation, the per-route summary and the best routes."""

    convention: str
    level: float
    n_bootstrap: int
    seed: int
    min_fit_budgets: int
    budgets: tuple[float, ...]  # the usable budgets, ascending
    origins: tuple[float, ...]  # the largest fitted budget of each origin
    forecasts: tuple[Forecast, ...]
    summary: dict[str, RouteSummary] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def best(self) -> dict[str, str | None]:
        return {q: choose_route(self.summary, q) for q in QUANTITIES}

    @property
    def interval_statement(self) -> str:
        return f"prediction interval of the measured vertex, nominal {self.level:.0%}"

    def to_dict(self) -> dict:
        return clean_json(
            {
                "convention": self.convention,
                "level": self.level,
                "intervals": self.interval_statement,
                "n_bootstrap": self.n_bootstrap,
                "seed": self.seed,
                "min_fit_budgets": self.min_fit_budgets,
                "budgets": self.budgets,
                "origins": self.origins,
                "summary": {r: s.to_dict() for r, s in self.summary.items()},
                "best_route": self.best,
                "forecasts": [f.to_dict() for f in self.forecasts],
                "notes": list(self.notes),
            }
        )


def pick_origins(budgets: list[float], first: int, cap: int = MAX_ORIGINS) -> list[int]:
    """Indices k (fit the first k budgets) from ``first`` to len - 1; beyond ``cap`` of them,
    ``cap`` spread evenly in log budget, the last (most data) always kept. Caps the time."""
    ks = list(range(first, len(budgets)))
    if len(ks) <= cap:
        return ks
    logs = np.log10([budgets[k - 1] for k in ks])
    want = np.linspace(logs[0], logs[-1], cap)
    chosen = {ks[int(np.argmin(np.abs(logs - w)))] for w in want} | {ks[-1]}
    return sorted(chosen)


def validate_runs(
    runs: list[Run],
    convention: str = "total",
    n_bootstrap: int = 200,
    seed: int = 0,
    min_fit_budgets: int = 3,
    level: float = LEVEL,
    max_origins: int = MAX_ORIGINS,
) -> Validation:
    """Rolling-origin validation of every route on ``runs`` (see the module docstring)."""
    if min_fit_budgets < 2:
        raise UserError(
            f"--min-fit-budgets must be >= 2 (a power law needs 2), got {min_fit_budgets}"
        )
    if n_bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0, got {n_bootstrap}")
    if not runs:
        raise UserError("no runs to validate")
    fpt = FlopsPerToken.from_runs(runs)
    groups = group_budgets(runs)
    usable = []  # (budget, runs, vertex), ascending
    for c, rs in groups:
        v = fit_vertex(rs, c, convention, fpt)
        if v.usable:
            usable.append((c, rs, v))
    m = len(usable)
    if m < min_fit_budgets + 1:
        raise UserError(
            f"only {m} usable budgets (of {len(groups)}): rolling origin needs min_fit_budgets + 1 "
            f"= {min_fit_budgets + 1}; sweep more budgets or lower --min-fit-budgets (>= 2)"
        )
    notes = []
    if m < len(groups):
        notes.append(
            f"{len(groups) - m} of {len(groups)} budgets have no usable vertex: not targets"
        )
    ks = pick_origins([c for c, _, _ in usable], min_fit_budgets, max_origins)
    if len(ks) < m - min_fit_budgets:
        notes.append(
            f"{m - min_fit_budgets} origins capped at {len(ks)} (max_origins={max_origins}): "
            "spread evenly in log budget, the last always kept"
        )
    forecasts = []
    for k in ks:
        origin = usable[k - 1][0]
        fit_runs = [r for c, rs in groups if c <= origin for r in rs]
        laws = fit_laws(fit_runs, convention, n_bootstrap, seed, objective="huber")
        if laws.isoflop.n_law is None:
            notes.append(
                f"origin {origin:.3g}: the isoFLOP fit had under 2 usable budgets, skipped"
            )
            continue
        if laws.isoflop.floor_law is None:
            notes.append(f"origin {origin:.3g}: no floored L* (under 2 vertices above E)")
        noise = run_noise(laws.isoflop, fit_runs)
        centre = centre_route(laws.isoflop, fit_runs, laws.parametric) if laws.parametric else None
        for j in range(k, m):
            rng = np.random.default_rng([seed, k, j])
            forecasts += _forecasts(
                laws, fit_runs, origin, usable[j], (noise, centre), level, rng, seed
            )
    return Validation(
        convention=convention,
        level=level,
        n_bootstrap=n_bootstrap,
        seed=seed,
        min_fit_budgets=min_fit_budgets,
        budgets=tuple(c for c, _, _ in usable),
        origins=tuple(usable[k - 1][0] for k in ks),
        forecasts=tuple(forecasts),
        summary=summarize(forecasts),
        notes=tuple(notes),
    )


def _forecasts(laws: Laws, fit_runs, origin, target, noise, level, rng, seed) -> list[Forecast]:
    """Every route's forecast from ``laws`` of the target budget's measured vertex."""
    c, target_runs, vertex = target
    iso, lc = laws.isoflop, math.log10(c)
    sizes = [r.params for r in target_runs]
    s = iso.samples
    routes = []  # (route, Prediction, bootstrap draws of L*), in ROUTES order
    raw = iso.predict(c)  # N*, D* with their CIs; L* by whichever form the fit prefers
    with np.errstate(over="ignore"):
        power = 10 ** (s["logk_l"] + s["exp_l"] * lc)
        if iso.floor_law is not None:
            floored = s["floor_E"] + 10 ** (s["logk_floor"] - s["gamma_floor"] * lc)
    if iso.floor_law is not None:  # each form's own point and draws, whatever predict() prefers
        at_floor = replace(raw, loss=Interval.from_samples(float(iso.floor_law(c)), floored))
        routes.append((FLOORED, at_floor, floored))
    at_power = replace(raw, loss=Interval.from_samples(float(iso.loss_law(c)), power))
    routes.append((POWER, at_power, power))
    if iso.floor_law is not None and laws.bias is not None:
        corrected = laws.bias.corrected(at_floor)
        shift = corrected.loss.point - at_floor.loss.point  # it moves N* and D*, not L*
        routes.append((CORRECTED, corrected, floored + shift))
    for p in laws.parametric_fits:
        pred = p.predict(c)
        routes.append((pred.method, pred, p.sample_optima(c)[2]))
    out = []
    (sigma, dof), centre = noise
    for route, pred, draws in routes:
        h = leverage(sizes, math.log10(pred.n_opt.point))
        pi = _pi(pred.loss.point, draws, sigma, dof, h, level, rng)
        out.append(_forecast(origin, c, vertex, route, pred.loss, pi, pred.n_opt))
    if iso.n_law is not None:
        pi, _ = outcome_interval(
            iso, fit_runs, c, sizes, laws.parametric, level, seed, centre=centre
        )
        out.append(_forecast(origin, c, vertex, PRODUCT, raw.loss, pi, None))
    return out


def _pi(point, draws, sigma, dof, h, level, rng) -> Interval:
    """Percentile PI of a bootstrap draw of the expected L* plus a t(dof) sigma sqrt(h) noise
    draw (none when dof is 0); without bootstrap draws, the point plus the noise."""
    d = np.asarray(draws, float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        d = np.array([point])
    centre = d[rng.integers(0, d.size, DRAWS)]
    if dof:
        centre = centre + rng.standard_t(dof, DRAWS) * sigma * math.sqrt(h)
    return Interval.from_samples(point, centre, level, PREDICTION)


def _forecast(origin, c, vertex, route, loss, pi, n_opt) -> Forecast:
    return Forecast(
        origin=origin,
        target=c,
        decades=math.log10(c / origin),
        route=route,
        loss=loss,
        loss_pi=pi,
        measured_loss=vertex.loss_opt,
        n_opt=n_opt,
        measured_n=vertex.n_opt,
    )


def format_summary(v: Validation) -> list[list[str]]:
    """Rows of the per-route table: route, forecasts, mean |err| L*, N* err, coverage, score."""
    rows = []
    for r, s in v.summary.items():
        n_err = "—" if not math.isfinite(s.n_log10_error) else f"{s.n_log10_error:.3f}"
        cov = (
            "—"
            if not s.n_scored
            else f"{s.coverage:.0%} ({round(s.coverage * s.n_scored)}/{s.n_scored})"
        )
        score = "—" if not math.isfinite(s.interval_score) else f"{s.interval_score:.4f}"
        rows.append([r, str(s.n), f"{s.loss_abs_error_pct:.2f}%", n_err, cov, score])
    return rows


SUMMARY_HEADERS = (
    "route",
    "forecasts",
    "mean |err| L*",
    "mean |log10 err| N*",
    "PI coverage",
    "interval score",
)
