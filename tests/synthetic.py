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
