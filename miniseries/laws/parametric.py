"""The parametric law L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, "Approach 3").

Two objectives, because they disagree on real data and the disagreement moves the allocation:
``huber`` (Huber, delta 1e-3, on log-loss residuals: Chinchilla's and Epoch AI's choice) and
``squared`` (squared error on the loss itself: the VPNLS fits of 2026). Every result names its
objective.

Fitted by variable projection: for fixed (alpha, beta) the loss is linear in (E, A, B) >= 0, so
that part is solved exactly (non-negative least squares on three unknowns, by enumerating the
seven supports; for Huber, Gauss-Newton steps with IRLS weights min(1, delta/|r|), whose fixed
point satisfies the exact objective's optimality conditions). Only (alpha, beta) is searched, on a
2-D grid; the grid's local minima are then polished jointly in all five parameters by a batched
Levenberg-Marquardt on the same objective, which also refits every bootstrap resample from the
full-data optimum. Deterministic: no random starts. numpy only, no torch.

Converting between N, D and C uses the family's FLOPs per token, fpt(N) (laws/fpt.py): the
compute-optimal N at C minimises L(N, C / fpt(N)).
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from miniseries.config import check_convention
from miniseries.errors import UserError
from miniseries.laws.base import Interval, Prediction, Run, clean_json, n_label
from miniseries.laws.fpt import FlopsPerToken

HUBER_DELTA = 1e-3
OBJECTIVES = {
    "huber": "Huber (delta 1e-3) on log loss",
    "squared": "squared error on loss",
}
GRID = np.arange(0.02, 2.02, 0.04)  # alpha and beta searched over 0.02..2.0 (Epoch's grid: 0..2)
N_POLISH = 8  # grid local minima polished in 5-D
SUPPORTS = [s for s in np.ndindex(2, 2, 2) if any(s)]  # the 7 non-empty subsets of (E, A, B)


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise UserError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    return objective


def _huber(r, delta):
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


# ---------------------------------------------------------------------------------------------
# The linear part: (E, A, B) >= 0 at fixed exponents


def nnls3(g, h):
    """argmin_theta>=0 theta'G theta - 2 h'theta for batches of 3x3 G (K,3,3) and h (K,3).

    Exact: the optimum is the unconstrained solution on its own support, so the best feasible
    support-restricted solution among the 7 non-empty supports (or 0) is it."""
    k = len(h)
    best = np.zeros((k, 3))
    best_f = np.zeros(k)  # objective - const at theta = 0
    for s in SUPPORTS:
        idx = [i for i in range(3) if s[i]]
        gs = g[:, idx][:, :, idx] + 1e-14 * np.eye(len(idx))
        with np.errstate(all="ignore"):
            t = np.linalg.solve(gs, h[:, idx, None])[..., 0]
        f = -(t * h[:, idx]).sum(1)
        ok = np.all(t >= 0, 1) & np.isfinite(f) & (f < best_f)
        best_f = np.where(ok, f, best_f)
        full = np.zeros((k, 3))
        full[:, idx] = t
        best = np.where(ok[:, None], full, best)
    return best


def _solve_linear(phi, loss, w, objective, delta, iters):
    """(E', A', B') >= 0 and the objective, per row of phi (K, n, 3), weights w (K, n) or (n,)."""
    w = np.broadcast_to(w, phi.shape[:2])
    if objective == "squared":
        g = np.einsum("kn,kni,knj->kij", w, phi, phi)
        theta = nnls3(g, np.einsum("kn,kni,n->ki", w, phi, loss))
        pred = phi @ theta[..., None]
        return theta, (w * (pred[..., 0] - loss) ** 2).sum(1)
    # Huber on log loss: start from relative least squares, then damped Gauss-Newton + IRLS
    rel = phi / loss[:, None]
    theta = nnls3(np.einsum("kn,kni,knj->kij", w, rel, rel), np.einsum("kn,kni->ki", w, rel))
    ll = np.log(loss)

    def objective_of(t):
        with np.errstate(all="ignore"):
            r = np.log(np.maximum((phi @ t[..., None])[..., 0], 1e-300)) - ll
        return (w * _huber(r, delta)).sum(1), r

    f, r = objective_of(theta)
    for _ in range(iters):
        pred = np.maximum((phi @ theta[..., None])[..., 0], 1e-300)
        u = w * np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        jac = phi / pred[..., None]
        target = (jac * theta[:, None, :]).sum(2) - r
        step = nnls3(
            np.einsum("kn,kni,knj->kij", u, jac, jac), np.einsum("kn,kni,kn->ki", u, jac, target)
        )
        for frac in (1.0, 0.5):  # keep the first damped step that lowers the objective
            cand = theta + frac * (step - theta)
            fc, rc = objective_of(cand)
            better = fc < f
            theta = np.where(better[:, None], cand, theta)
            f, r = np.where(better, fc, f), np.where(better[:, None], rc, r)
    return theta, f


def profile(alpha, beta, xn, xd, loss, w, objective, delta, iters=5, chunk=200):
    """min over (E', A', B') >= 0 of the objective at each (alpha, beta) pair; with the
    coefficients (K, 3) for features (1, e^(-alpha xn), e^(-beta xd)), xn, xd centred logs."""
    alpha, beta = np.atleast_1d(alpha), np.atleast_1d(beta)
    thetas, fs = [], []
    for i in range(0, len(alpha), chunk):
        a, b = alpha[i : i + chunk, None], beta[i : i + chunk, None]
        phi = np.stack([np.ones((len(a), len(xn))), np.exp(-a * xn), np.exp(-b * xd)], axis=2)
        t, f = _solve_linear(phi, loss, w, objective, delta, iters)
        thetas.append(t)
        fs.append(f)
    return np.concatenate(thetas), np.concatenate(fs)


# ---------------------------------------------------------------------------------------------
# The joint polish: Levenberg-Marquardt on q = (a', b', e, alpha, beta), L = exp(LSE(...))


def _lm(q, w, xn, xd, loss, objective, delta, max_iter=500, tol=1e-12):
    """Minimise the objective over q for a batch of starts (B, 5) and weights (B, n) at once.

    log L = LSE(a' - alpha xn, b' - beta xd, e). Residuals are log-loss ones under Huber (IRLS
    weights min(1, delta/|r|)), loss ones under squared error. A step is kept only where it lowers
    the true objective. Returns the optimised q and the objective per row."""
    q = np.array(q, float)
    ll = np.log(loss)

    def evaluate(q, w, jac=True):
        t1, t2 = q[:, :1] - q[:, 3:4] * xn, q[:, 1:2] - q[:, 4:5] * xd
        t3 = q[:, 2:3]
        m = np.maximum(np.maximum(t1, t2), t3)
        e1, e2, e3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(t3 - m)
        s = e1 + e2 + e3
        lse = m + np.log(s)
        if objective == "huber":
            r = lse - ll
            f = (w * _huber(r, delta)).sum(1)
        else:
            with np.errstate(over="ignore"):
                pred = np.exp(lse)
            r = pred - loss
            f = (w * r * r).sum(1)
        if not jac:
            return f
        s1, s2 = e1 / s, e2 / s
        jt = np.stack([s1, s2, e3 / s, -s1 * xn, -s2 * xd], 1)  # d lse / dq, (B, 5, n)
        if objective == "huber":
            u = w * np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        else:
            jt = jt * pred[:, None, :]
            u = w
        return f, jt * u[:, None, :], jt, r

    f, jtu, jt, r = evaluate(q, w)
    lam = np.full(len(q), 1e-3)
    active = np.ones(len(q), bool)
    eye = np.eye(5)
    for _ in range(max_iter):
        h = jtu @ jt.transpose(0, 2, 1)
        g = (jtu @ r[..., None])[..., 0]
        diag = np.einsum("bii->bi", h)
        h = h + (lam[:, None] * diag + 1e-12)[:, :, None] * eye
        with np.errstate(all="ignore"):
            q_new = q - np.linalg.solve(h, g[..., None])[..., 0]
            f_new = evaluate(q_new, w, jac=False)
        accept = active & (f_new < f)
        done = (accept & ((f - f_new) <= tol * np.maximum(f, 1e-300))) | (lam > 1e8)
        lam = np.where(accept, lam / 3, lam * 4)
        if accept.any():
            q[accept] = q_new[accept]
            f[accept], jtu[accept], jt[accept], r[accept] = evaluate(q[accept], w[accept])
        active &= ~done
        if not active.any():
            break
    return q, f


def _to_q(alpha, beta, theta):
    """Grid solutions -> LM parameters q (zero coefficients become e^-50 of the loss scale)."""
    logs = np.log(np.maximum(theta, 1e-22))
    return np.column_stack([logs[:, 1], logs[:, 2], logs[:, 0], alpha, beta])


def _grid_minima(f2d):
    """Indices (flat) of the grid's local minima, best first."""
    pad = np.pad(f2d, 1, constant_values=np.inf)
    core = pad[1:-1, 1:-1]
    is_min = np.ones_like(core, bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                is_min &= (
                    core <= pad[1 + di : pad.shape[0] - 1 + di, 1 + dj : pad.shape[1] - 1 + dj]
                )
    flat = np.flatnonzero(is_min.ravel())
    return flat[np.argsort(f2d.ravel()[flat])]


# ---------------------------------------------------------------------------------------------
# The compute-optimal allocation under fpt(N)


def optimum(params, budget, fpt: FlopsPerToken):
    """(N_opt, D_opt, L_opt) for arrays or scalars of (A, B, E, alpha, beta) at C = budget:
    the N minimising L(N, C / fpt(N)). Closed form when fpt / N is one constant c
    (N = G (C/c)^a), else a golden-section search in log N around it."""
    A, B, E, al, be = np.broadcast_arrays(*(np.asarray(x, float) for x in params))
    budget = np.asarray(budget, float)
    with np.errstate(all="ignore"):
        g = (al * A / (be * B)) ** (1 / (al + be))
        c = float(np.exp(np.mean(np.subtract(fpt.log_fpt, fpt.log_n))))
        n = g * (budget / c) ** (be / (al + be))
        constant = np.ptp(np.subtract(fpt.log_fpt, fpt.log_n)) < 1e-9
        if not constant:
            n = _golden(A, B, al, be, budget, fpt, np.log(n))
        d = budget / fpt(n)
        return n, d, E + A / n**al + B / d**be


def _golden(A, B, al, be, budget, fpt, x0, half_width=8.0, iters=90):
    """Minimise A e^(-alpha x) + B (C / fpt(e^x))^-beta over x = log N in x0 +- half_width."""
    lc = np.log(budget)

    def f(x):
        return A * np.exp(-al * x) + B * np.exp(-be * (lc - fpt.log_at(x)))

    x0 = np.where(np.isfinite(x0), x0, 0.0)
    lo, hi = x0 - half_width, x0 + half_width
    ratio = (np.sqrt(5) - 1) / 2
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(iters):
        left = f1 < f2
        hi, lo = np.where(left, x2, hi), np.where(left, lo, x1)
        x2, x1 = (
            np.where(left, x1, lo + ratio * (hi - lo)),
            np.where(left, hi - ratio * (hi - lo), x2),
        )
        f2, f1 = np.where(left, f1, f(x2)), np.where(left, f(x1), f2)
    return np.exp((lo + hi) / 2)


# ---------------------------------------------------------------------------------------------
# The fit


@dataclass(frozen=True)
class ParametricFit:
    """L(N, D) = E + A/N^alpha + B/D^beta under one objective, and the allocation it implies.

    N_opt(C) minimises L(N, C / fpt(N)); with fpt = cN that is N_opt = G (C/c)^a,
    a = beta/(alpha+beta), b = alpha/(alpha+beta), G = (alpha A / (beta B))^(1/(alpha+beta)).
    """

    convention: str
    objective: str  # huber | squared (OBJECTIVES says what each is)
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    intervals: dict[str, Interval]  # for E, A, B, alpha, beta, a, b, ratio
    objective_value: float
    n_runs: int
    fpt: FlopsPerToken
    ratio_budget: float  # where `ratio` is evaluated: geometric mean of the runs' FLOPs
    n_bootstrap: int
    delta: float = HUBER_DELTA
    samples: np.ndarray = field(default=None, repr=False, compare=False)  # (B, 5) of (a,b,e,al,be)

    @property
    def a(self) -> float:
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def ratio(self) -> float:
        n, d = self.optimum(self.ratio_budget)
        return d / n

    @property
    def objective_label(self) -> str:
        return OBJECTIVES[self.objective]

    @property
    def params(self) -> np.ndarray:
        return np.array([self.A, self.B, self.E, self.alpha, self.beta])

    def loss(self, n, d):
        n, d = np.asarray(n, float), np.asarray(d, float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def optimum(self, budget: float) -> tuple[float, float]:
        n, d, _ = optimum(self.params, budget, self.fpt)
        return float(n), float(d)

    def sample_losses(self, n: float, d: float) -> np.ndarray:
        """L(n, d) under each bootstrap refit (NaN where a refit diverged)."""
        A, B, E, al, be = natural(self.samples)
        with np.errstate(all="ignore"):
            return E + A / n**al + B / d**be

    def sample_optima(self, budget: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N_opt, D_opt, L_opt) at ``budget`` under each bootstrap refit."""
        return optimum(natural(self.samples), budget, self.fpt)

    def predict(self, budget: float) -> Prediction:
        n, d = self.optimum(budget)
        bn, bd, bl = self.sample_optima(budget)
        return Prediction(
            budget=budget,
            n_opt=Interval.from_samples(n, bn),
            d_opt=Interval.from_samples(d, bd),
            loss=Interval.from_samples(float(self.loss(n, d)), bl),
            method=f"parametric ({self.objective})",
            convention=self.convention,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("samples")
        d["fpt"] = self.fpt.to_dict()
        extra = {"a": self.a, "b": self.b, "ratio": self.ratio, "n_label": n_label(self.convention)}
        extra["objective_label"] = self.objective_label
        return clean_json(d | extra)


def natural(samples):
    """(B, 5) rows of (a, b, e, alpha, beta) -> arrays A, B, E, alpha, beta."""
    with np.errstate(over="ignore"):
        return (*np.exp(samples[:, :3]).T, samples[:, 3], samples[:, 4])


def fit_parametric(
    runs: list[Run],
    convention: str = "total",
    n_bootstrap: int = 1000,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    objective: str = "huber",
    fpt: FlopsPerToken | None = None,
) -> ParametricFit:
    """Variable-projection fit (module docstring) of the parametric law to every run.

    ``fpt``: FLOPs per token as a function of N (default: the runs' own flops / tokens). Each
    bootstrap resample (runs drawn with replacement, as multinomial weights) is refitted from the
    full-data optimum. Needs more runs than the 5 parameters, spread in both N and D."""
    check_convention(convention)
    check_objective(objective)
    if len(runs) < 6:
        raise UserError(f"the parametric fit needs at least 6 runs (5 parameters), got {len(runs)}")
    fpt = fpt or FlopsPerToken.from_runs(runs)
    ln = np.log([r.params for r in runs])
    ld = np.log([r.tokens for r in runs])
    loss = np.array([r.loss for r in runs], float)
    mn, md = ln.mean(), ld.mean()
    xn, xd = ln - mn, ld - md
    q, fun = _global_optimum(xn, xd, loss, objective, delta)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(runs), np.full(len(runs), 1 / len(runs)), size=n_bootstrap)
    chunks = [
        _lm(np.tile(q, (len(wc), 1)), wc.astype(float), xn, xd, loss, objective, delta)[0]
        for wc in np.array_split(w, max(1, n_bootstrap // 200))
        if len(wc)
    ]
    p = _shift(q, mn, md)
    samples = _shift(np.concatenate(chunks), mn, md) if chunks else np.zeros((0, 5))
    c_mid = float(np.exp(np.mean(np.log([r.flops for r in runs]))))
    fitted = (*np.exp(p[:3]), p[3], p[4])  # A, B, E, alpha, beta
    point = dict(zip(("A", "B", "E", "alpha", "beta"), map(float, fitted)))
    point |= {"a": p[4] / (p[3] + p[4]), "b": p[3] / (p[3] + p[4])}
    n_mid, d_mid, _ = optimum(fitted, c_mid, fpt)
    point["ratio"] = d_mid / n_mid
    A, B, E, al, be = natural(samples)
    bn, bd, _ = optimum((A, B, E, al, be), c_mid, fpt)
    boot = {"E": E, "A": A, "B": B, "alpha": al, "beta": be}
    with np.errstate(all="ignore"):  # a diverged refit: non-finite, dropped by the intervals
        boot |= {"a": be / (al + be), "b": al / (al + be), "ratio": bd / bn}
    intervals = {k: Interval.from_samples(float(point[k]), boot[k]) for k in boot}
    return ParametricFit(
        convention=convention,
        objective=objective,
        E=point["E"],
        A=point["A"],
        B=point["B"],
        alpha=point["alpha"],
        beta=point["beta"],
        intervals=intervals,
        objective_value=float(fun),
        n_runs=len(runs),
        fpt=fpt,
        ratio_budget=c_mid,
        n_bootstrap=n_bootstrap,
        delta=delta,
        samples=samples,
    )


def _global_optimum(xn, xd, loss, objective, delta):
    """The grid of (alpha, beta) with (E, A, B) projected out, then its N_POLISH best local
    minima polished jointly; the lowest objective wins. Returns centred q and the objective."""
    al, be = (g.ravel() for g in np.meshgrid(GRID, GRID, indexing="ij"))
    theta, f = profile(al, be, xn, xd, loss, np.ones(len(xn)), objective, delta)
    pick = _grid_minima(f.reshape(len(GRID), len(GRID)))[:N_POLISH]
    starts = _to_q(al[pick], be[pick], theta[pick])
    q, fq = _lm(starts, np.ones((len(starts), len(xn))), xn, xd, loss, objective, delta)
    best = int(np.argmin(fq))
    return q[best], float(fq[best])


def _shift(p, mn, md):
    """centred (a', b', ...) -> (a, b, e, alpha, beta): a = a' + alpha mn, b = b' + beta md."""
    p = np.array(p, float)
    p[..., 0] += p[..., 3] * mn
    p[..., 1] += p[..., 4] * md
    return p


def objective_value(params, runs: list[Run], objective: str, delta: float = HUBER_DELTA) -> float:
    """The objective of (A, B, E, alpha, beta) on ``runs``: to compare published fits with ours."""
    A, B, E, al, be = params
    n = np.array([r.params for r in runs])
    d = np.array([r.tokens for r in runs])
    loss = np.array([r.loss for r in runs])
    pred = E + A / n**al + B / d**be
    if check_objective(objective) == "huber":
        return float(_huber(np.log(pred) - np.log(loss), delta).sum())
    return float(((pred - loss) ** 2).sum())
