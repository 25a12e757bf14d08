"""The parametric law L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, "Approach 3").

Fitted to every run with a Huber loss (delta 1e-3) on log-loss residuals, written as
LSE(a - alpha log N, b - beta log D, e) as Epoch AI's replication does. The objective is nearly
L1, so which local optimum wins depends on the starts: we score Epoch's whole grid of 4,500 starts
at once, then refine the best ones, and every bootstrap resample, together with a batched
Levenberg-Marquardt step on the smoothed objective (per-start L-BFGS-B found the same optimum on
the Chinchilla data but took ~20 s). numpy only, no torch.
"""

import itertools
from dataclasses import asdict, dataclass, field

import numpy as np

from miniseries.config import check_convention
from miniseries.errors import UserError
from miniseries.laws.base import Interval, Prediction, Run, clean_json, n_label

HUBER_DELTA = 1e-3
# Epoch AI's grid of starts (a, b, e, alpha, beta): 6 x 6 x 5 x 5 x 5 = 4500 points. Which local
# optimum of the (nearly L1) Huber objective wins depends on the starts, so we keep theirs.
EPOCH_GRID = np.array(
    list(
        itertools.product(
            np.arange(0, 30, 5),
            np.arange(0, 30, 5),
            np.arange(-1, 1.5, 0.5),
            np.arange(0, 2.5, 0.5),
            np.arange(0, 2.5, 0.5),
        )
    ),
    dtype=float,
)
N_POLISH = 64  # local optimisations from the best grid starts (all 4500 would take ~20 s)


def _huber_lm(q, w, xn, xd, ll, delta, max_iter=500, tol=1e-12):
    """Minimise sum_i w_i Huber(LSE(a' - alpha xn, b' - beta xd, e) - log L) for a batch of
    starts q (B, 5) and weights w (B, n) at once, with xn, xd the centred log N, log D.

    Levenberg-Marquardt on the IRLS majoriser of the Huber loss (weights min(1, delta/|r|)), a
    step kept only where it lowers the true objective; centring log N and log D decorrelates
    (a', alpha) and (b', beta), which an uncentred fit needs thousands of tiny steps for.
    Returns the optimised q and the objective per row.
    """
    q = np.array(q, float)

    def evaluate(q, w, jac=True):
        t1, t2 = q[:, :1] - q[:, 3:4] * xn, q[:, 1:2] - q[:, 4:5] * xd
        t3 = q[:, 2:3]
        m = np.maximum(np.maximum(t1, t2), t3)
        e1, e2, e3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(t3 - m)
        s = e1 + e2 + e3
        r = m + np.log(s) - ll
        ar = np.abs(r)
        f = (w * np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))).sum(1)
        if not jac:
            return f
        s1, s2 = e1 / s, e2 / s
        jt = np.stack([s1, s2, e3 / s, -s1 * xn, -s2 * xd], 1)  # (B, 5, n)
        u = w * np.minimum(1.0, delta / np.maximum(ar, 1e-300))
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
        q_new = q - np.linalg.solve(h, g[..., None])[..., 0]
        f_new = evaluate(q_new, w, jac=False)
        accept = active & (f_new < f)
        done = (accept & ((f - f_new) < tol * f)) | (lam > 1e8)
        lam = np.where(accept, lam / 3, lam * 4)
        if accept.any():
            q[accept] = q_new[accept]
            f[accept], jtu[accept], jt[accept], r[accept] = evaluate(q[accept], w[accept])
        active &= ~done
        if not active.any():
            break
    return q, f


def _shift(p, mn, md):
    """(a, b, e, alpha, beta) <-> centred (a', b', ...): a = a' + alpha mn, b = b' + beta md."""
    p = np.array(p, float)
    p[..., 0] += p[..., 3] * mn
    p[..., 1] += p[..., 4] * md
    return p


def _grid_objective(starts, ln, ld, ll, delta, chunk=256):
    """The unweighted objective at many starting points at once (chunks bound the memory)."""
    out = []
    for p in np.array_split(starts, max(1, len(starts) // chunk)):
        a, b, e, al, be = (p[:, i : i + 1] for i in range(5))
        pred = np.logaddexp(np.logaddexp(a - al * ln, b - be * ld), e)
        ar = np.abs(pred - ll)
        out.append(np.where(ar <= delta, 0.5 * ar * ar, delta * (ar - 0.5 * delta)).sum(1))
    return np.concatenate(out)


@dataclass(frozen=True)
class ParametricFit:
    """L(N, D) = E + A/N^alpha + B/D^beta, and the compute-optimal allocation it implies.

    With C = c N D (c = the runs' median FLOPs per param-token, 6 for the 6ND rule):
    N_opt = G (C/c)^a, D_opt = (C/c)^b / G, a = beta/(alpha+beta), b = alpha/(alpha+beta),
    G = (alpha A / (beta B))^(1/(alpha+beta)).
    """

    convention: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    intervals: dict[str, Interval]  # for E, A, B, alpha, beta, a, b, ratio
    objective: float
    n_runs: int
    flops_per_param_token: float
    ratio_budget: float  # where `ratio` is evaluated: geometric mean of the runs' FLOPs
    n_bootstrap: int
    delta: float = HUBER_DELTA
    samples: np.ndarray = field(default=None, repr=False, compare=False)  # (B, 5) like p

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

    def loss(self, n, d):
        n, d = np.asarray(n, float), np.asarray(d, float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def optimum(self, budget: float) -> tuple[float, float]:
        n, d, _ = optimum(
            np.array([self.A, self.B, self.E, self.alpha, self.beta]),
            budget,
            self.flops_per_param_token,
        )
        return float(n), float(d)

    def sample_losses(self, n: float, d: float) -> np.ndarray:
        """L(n, d) under each bootstrap refit (NaN where a refit diverged)."""
        A, B, E, al, be = _natural(self.samples)
        with np.errstate(all="ignore"):
            return E + A / n**al + B / d**be

    def sample_optima(self, budget: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N_opt, D_opt, L_opt) at ``budget`` under each bootstrap refit."""
        return optimum(_natural(self.samples), budget, self.flops_per_param_token)

    def predict(self, budget: float) -> Prediction:
        n, d = self.optimum(budget)
        bn, bd, bl = optimum(_natural(self.samples), budget, self.flops_per_param_token)
        return Prediction(
            budget=budget,
            n_opt=Interval.from_samples(n, bn),
            d_opt=Interval.from_samples(d, bd),
            loss=Interval.from_samples(float(self.loss(n, d)), bl),
            method="parametric",
            convention=self.convention,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("samples")
        return clean_json(
            d | {"a": self.a, "b": self.b, "ratio": self.ratio, "n_label": n_label(self.convention)}
        )


def _natural(samples):
    """(B, 5) rows of (a, b, e, alpha, beta) -> arrays A, B, E, alpha, beta."""
    with np.errstate(over="ignore"):
        return (*np.exp(samples[:, :3]).T, samples[:, 3], samples[:, 4])


def optimum(params, budget: float, c: float):
    """(N_opt, D_opt, L_opt) for arrays or scalars of (A, B, E, alpha, beta)."""
    A, B, E, al, be = (np.asarray(x, float) for x in params)
    with np.errstate(all="ignore"):
        g = (al * A / (be * B)) ** (1 / (al + be))
        n = g * (budget / c) ** (be / (al + be))
        d = budget / (c * n)
        return n, d, E + A / n**al + B / d**be


def fit_parametric(
    runs: list[Run],
    convention: str = "total",
    n_bootstrap: int = 1000,
    seed: int = 0,
    delta: float = HUBER_DELTA,
) -> ParametricFit:
    """Huber fit of log L = LSE(a - alpha log N, b - beta log D, e), summed over runs.

    The objective is evaluated on Epoch's 4500-point grid of starts in one vectorised pass; the
    N_POLISH best are optimised together by a batched Levenberg-Marquardt (see _huber_lm) and the
    lowest objective wins. It lands on the same optimum as per-start scipy L-BFGS-B over all 4500
    starts (checked on Chinchilla's data: objective 1.01828e-3 both ways) at a hundredth of the
    time, which is what makes 1000 bootstrap refits affordable. Each bootstrap resample (runs drawn
    with replacement, as multinomial weights) starts from the full-data optimum. Needs more runs
    than the 5 parameters, spread in both N and D.
    """
    check_convention(convention)
    if len(runs) < 6:
        raise UserError(f"the parametric fit needs at least 6 runs (5 parameters), got {len(runs)}")
    ln = np.log([r.params for r in runs])
    ld = np.log([r.tokens for r in runs])
    ll = np.log([r.loss for r in runs])
    mn, md = ln.mean(), ld.mean()
    xn, xd = ln - mn, ld - md
    grid = _grid_objective(EPOCH_GRID, ln, ld, ll, delta)
    starts = _shift(EPOCH_GRID[np.argsort(grid)[:N_POLISH]], -mn, -md)
    q, f = _huber_lm(starts, np.ones((len(starts), len(runs))), xn, xd, ll, delta)
    best = int(np.argmin(f))
    fun, qbest = float(f[best]), q[best]
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(runs), np.full(len(runs), 1 / len(runs)), size=n_bootstrap)
    chunks = [
        _huber_lm(np.tile(qbest, (len(wc), 1)), wc.astype(float), xn, xd, ll, delta)[0]
        for wc in np.array_split(w, max(1, n_bootstrap // 200))
        if len(wc)
    ]
    p = _shift(qbest, mn, md)
    samples = _shift(np.concatenate(chunks), mn, md) if chunks else np.zeros((0, 5))
    c = float(np.median([r.flops / (r.params * r.tokens) for r in runs]))
    c_mid = float(np.exp(np.mean(np.log([r.flops for r in runs]))))
    fitted = (*np.exp(p[:3]), p[3], p[4])  # A, B, E, alpha, beta
    point = dict(zip(("A", "B", "E", "alpha", "beta"), map(float, fitted)))
    point |= {"a": p[4] / (p[3] + p[4]), "b": p[3] / (p[3] + p[4])}
    n_mid, d_mid, _ = optimum(fitted, c_mid, c)
    point["ratio"] = d_mid / n_mid
    A, B, E, al, be = _natural(samples)
    bn, bd, _ = optimum((A, B, E, al, be), c_mid, c)
    boot = {"E": E, "A": A, "B": B, "alpha": al, "beta": be}
    boot |= {"a": be / (al + be), "b": al / (al + be), "ratio": bd / bn}
    intervals = {k: Interval.from_samples(float(point[k]), boot[k]) for k in boot}
    return ParametricFit(
        convention=convention,
        E=point["E"],
        A=point["A"],
        B=point["B"],
        alpha=point["alpha"],
        beta=point["beta"],
        intervals=intervals,
        objective=float(fun),
        n_runs=len(runs),
        flops_per_param_token=c,
        ratio_budget=c_mid,
        n_bootstrap=n_bootstrap,
        delta=delta,
        samples=samples,
    )
