"""Scaling-law runs drawn from a known law: a planted truth for tests and benchmarks to recover."""

import math

import numpy as np

from miniseries.laws.base import Run
from miniseries.laws.fpt import FlopsPerToken
from miniseries.laws.parametric import optimum

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
    evenly in log10 over optimum x 10^[-span, span] at each budget, D = C / 6N. For tests and
    benchmarks: the true optimum is N = G (C/6)^a with a = beta / (alpha + beta)."""
    rng = np.random.default_rng(seed)
    E, A, B, al, be = (law[k] for k in ("E", "A", "B", "alpha", "beta"))
    runs = []
    for c in budgets:
        n_opt, _, _ = optimum((A, B, E, al, be), c, FlopsPerToken.six_nd())
        for n in n_opt * 10 ** np.linspace(-span, span, per_budget):
            d = c / (6 * n)
            loss = (E + A / n**al + B / d**be) * math.exp(noise * rng.standard_normal())
            runs.append(Run(float(n), float(d), float(c), float(loss), budget=float(c)))
    return runs


# ---------------------------------------------------------------------------------------------
# Truths that neither route assumes: coverage measured on them is not the fitter grading its own
# form. Each is L(N, D) under C = 6ND, with constants at Chinchilla's scale.


def interaction(n, d):
    """Chinchilla's surface plus an N-D interaction term (the two limits are not additive)."""
    a, b = CHINCHILLA["A"] / n ** CHINCHILLA["alpha"], CHINCHILLA["B"] / d ** CHINCHILLA["beta"]
    return CHINCHILLA["E"] + a + b + 0.5 * np.sqrt(a * b)


def broken_d(n, d):
    """Chinchilla's surface whose data term steepens (beta 0.28 -> 0.43) past 3e9 tokens: a
    smoothly broken power law in D."""
    a = CHINCHILLA["A"] / n ** CHINCHILLA["alpha"]
    return CHINCHILLA["E"] + a + CHINCHILLA["B"] / d ** CHINCHILLA["beta"] / (1 + d / 3e9) ** 0.15


def kaplan(n, d):
    """Kaplan et al. 2020, eq. 1.5: L = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D."""
    return ((8.8e13 / n) ** (0.076 / 0.095) + 5.4e13 / d) ** 0.095


TRUTHS = {"interaction": interaction, "broken power law in D": broken_d, "kaplan": kaplan}


def true_optimum(truth, c: float) -> tuple[float, float, float]:
    """(N*, D*, L*) of a truth at C = 6ND, by bounded Brent on log10 N after a coarse grid."""
    from scipy.optimize import minimize_scalar

    def loss(x):
        return float(truth(10.0**x, c / (6 * 10.0**x)))

    grid = np.linspace(math.log10(c) / 2 - 5, math.log10(c) / 2 + 3, 801)
    x0 = grid[np.argmin(truth(10.0**grid, c / (6 * 10.0**grid)))]
    res = minimize_scalar(loss, bounds=(x0 - 0.02, x0 + 0.02), method="bounded",
                          options={"xatol": 1e-10})  # fmt: skip
    n = 10.0**res.x
    return n, c / (6 * n), res.fun


def true_exponents(truth, budgets) -> tuple[float, float]:
    """The estimand of an isoFLOP fit over ``budgets`` when the truth is no power law: the
    least-squares slopes of log10 N* and log10 D* against log10 C through the true optima."""
    lc = np.log10(budgets)
    opt = np.array([true_optimum(truth, c) for c in budgets])
    return float(np.polyfit(lc, np.log10(opt[:, 0]), 1)[0]), float(
        np.polyfit(lc, np.log10(opt[:, 1]), 1)[0]
    )


def truth_runs(truth, budgets, per_budget=9, span=0.6, noise=0.003, seed=0) -> list[Run]:
    """isoFLOP runs drawn from ``truth`` with multiplicative log-normal noise, sizes evenly in
    log10 over the true optimum x 10^[-span, span] at each budget, D = C / 6N."""
    rng = np.random.default_rng(seed)
    runs = []
    for c in budgets:
        n_opt = true_optimum(truth, c)[0]
        for n in n_opt * 10 ** np.linspace(-span, span, per_budget):
            d = c / (6 * n)
            loss = float(truth(n, d)) * math.exp(noise * rng.standard_normal())
            runs.append(Run(float(n), float(d), float(c), loss, budget=float(c)))
    return runs
