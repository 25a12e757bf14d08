"""Approach 2's own bias, estimated per fit.

A parabola in log N is a second-order Taylor expansion of the isoFLOP curve. When alpha != beta
the curve is not symmetric in log N, so the fitted vertex sits off the true minimum by a shift
that depends on alpha, beta and the sampling (how wide, how many sizes, how off-centre), even with
no noise; the exponents survive, the intercepts do not (Open-Athena, "Problems with Chinchilla
Approach 2", 2026: on Chinchilla's surface with 15 sizes at +-16x around each optimum, D* comes
out 5.1% low at every budget).

So we ask the fitted parametric surface what Approach 2 would have measured of it on the study's
own sampling (its real sizes and tokens at each budget, its FLOPs per token), run the same
parabola-and-power-law pipeline on those noise-free losses, and compare with the surface's true
optimum. The differences are the implied bias of a, b, the ratio and N*, D* at any budget; the
bias-corrected allocation divides them out. numpy only, no torch.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from miniseries.laws.base import Interval, Prediction, Run, clean_json, group_budgets
from miniseries.laws.isoflop import ScalingFit, fit_isoflop
from miniseries.laws.parametric import ParametricFit, optimum


@dataclass(frozen=True)
class Approach2Bias:
    """Approach 2 on the fitted surface vs that surface's own optimum.

    ``sim_*``: the power laws Approach 2 fits to the surface sampled as the study was;
    ``true_*``: the least-squares power law through the surface's true optima at the same budgets.
    """

    objective: str  # the parametric objective whose surface was simulated
    surface: tuple[float, float, float, float, float]  # A, B, E, alpha, beta
    sim_n: tuple[float, float]  # (log10 k, a)
    sim_d: tuple[float, float]  # (log10 k', b)
    true_n: tuple[float, float]
    true_d: tuple[float, float]
    budgets: tuple[float, ...]
    ratio_budget: float
    fpt: object  # FlopsPerToken

    @property
    def a_bias(self) -> float:
        return self.sim_n[1] - self.true_n[1]

    @property
    def b_bias(self) -> float:
        return self.sim_d[1] - self.true_d[1]

    def n_bias(self, budget: float) -> float:
        """Relative error of Approach 2's N* at ``budget`` (-0.05: 5% low)."""
        return self._ratio_of(self.sim_n, budget) / self._true(budget)[0] - 1

    def d_bias(self, budget: float) -> float:
        return self._ratio_of(self.sim_d, budget) / self._true(budget)[1] - 1

    def ratio_bias(self, budget: float | None = None) -> float:
        c = self.ratio_budget if budget is None else budget
        return (1 + self.d_bias(c)) / (1 + self.n_bias(c)) - 1

    def _ratio_of(self, law, budget):
        return 10 ** (law[0] + law[1] * math.log10(budget))

    def _true(self, budget):
        n, d, _ = optimum(self.surface, budget, self.fpt)
        return float(n), float(d)

    def corrected(self, pred: Prediction) -> Prediction:
        """An isoFLOP prediction with N* and D* divided by (1 + their bias) at its budget."""
        fn, fd = 1 + self.n_bias(pred.budget), 1 + self.d_bias(pred.budget)
        return replace(
            pred,
            n_opt=_scaled(pred.n_opt, 1 / fn),
            d_opt=_scaled(pred.d_opt, 1 / fd),
            method="isoflop, bias-corrected",
        )

    def to_dict(self, budgets=()) -> dict:
        at = {
            f"{c:.4g}": {"n_bias": self.n_bias(c), "d_bias": self.d_bias(c)}
            for c in (*self.budgets, *budgets)
        }
        return clean_json(
            {
                "objective": self.objective,
                "a_bias": self.a_bias,
                "b_bias": self.b_bias,
                "ratio_bias": self.ratio_bias(),
                "ratio_budget": self.ratio_budget,
                "at_budgets": at,
                "sim_n": self.sim_n,
                "sim_d": self.sim_d,
                "true_n": self.true_n,
                "true_d": self.true_d,
            }
        )


def _scaled(iv: Interval | None, f: float) -> Interval | None:
    if iv is None:
        return None
    return Interval(iv.point * f, iv.lo * f, iv.hi * f, iv.level, iv.kind)


def approach2_bias(iso: ScalingFit, par: ParametricFit, runs: list[Run]) -> Approach2Bias | None:
    """Simulate ``par``'s surface on the sampling of ``iso``'s usable budgets; None when the
    simulated sweep leaves Approach 2 with under 2 usable budgets."""
    if iso.n_law is None:
        return None
    used = {v.budget for v in iso.vertices if v.usable}
    sim = [
        replace(r, loss=float(par.loss(r.params, r.tokens)))
        for c, group in group_budgets(runs)
        if c in used
        for r in group
    ]
    fit = fit_isoflop(sim, iso.convention, n_bootstrap=0, fpt=iso.fpt)
    if fit.n_law is None:
        return None
    budgets = np.array([v.budget for v in fit.vertices if v.usable])
    n, d, _ = optimum(par.params, budgets, iso.fpt)
    lc = np.log10(budgets)
    true_n, true_d = np.polyfit(lc, np.log10(n), 1), np.polyfit(lc, np.log10(d), 1)
    return Approach2Bias(
        objective=par.objective,
        surface=tuple(map(float, par.params)),
        sim_n=(math.log10(fit.n_law.k), fit.n_law.exponent),
        sim_d=(math.log10(fit.d_law.k), fit.d_law.exponent),
        true_n=(float(true_n[1]), float(true_n[0])),
        true_d=(float(true_d[1]), float(true_d[0])),
        budgets=tuple(map(float, budgets)),
        ratio_budget=iso.ratio_budget,
        fpt=iso.fpt,
    )
