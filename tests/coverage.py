"""Coverage of miniseries' intervals where the truth is known, on truths neither route assumes
(tests/synthetic.TRUTHS): shared by the tests and benchmarks/bench_coverage.py.

A family is drawn from a truth at a design (budgets, sizes per budget, span), the laws fitted as
the product fits them (study/stored_fits.fit_for_prediction, laws/outcome.py), and each interval
scored against what the truth says: the CIs of a, b and D*/N* against the truth's exponents over
the design's budgets and its ratio at the fit's ratio budget; the PIs of one new run and of a new
budget's vertex against draws from the truth at the held-out budget. Each record also carries
the interval score (Gneiting & Raftery 2007), a proper score: narrower is better only if the
interval still covers."""

import math

import numpy as np
from scipy.stats import binom
from synthetic import true_exponents, true_optimum, truth_runs

from miniseries.laws.base import LEVEL
from miniseries.laws.isoflop import fit_isoflop
from miniseries.laws.outcome import outcome_interval
from miniseries.study.stored_fits import fit_for_prediction

# (name, fitted budgets, held-out budget, sizes per budget, span in decades either side)
DESIGNS = {
    "demo: 3 budgets x 5": ((1e18, 1.5e18, 2.25e18), 5e18, 5, 0.5),
    "4 budgets x 7": ((1e18, 2e18, 4e18, 8e18), 2e19, 7, 0.6),
    "6 budgets x 9": ((1e18, 3e18, 1e19, 3e19, 1e20, 3e20), 1e21, 9, 0.6),
}
GRID_STEP = 0.2  # a family's sizes, 10^0.2 = 1.6x apart (like consecutive depths)
NOISE = 0.003  # multiplicative loss noise per run


def interval_score(lo: float, hi: float, y: float, level: float = LEVEL) -> float:
    """(hi - lo) + (2/alpha)(lo - y)[y < lo] + (2/alpha)(y - hi)[y > hi], alpha = 1 - level."""
    alpha = 1 - level
    return (hi - lo) + 2 / alpha * max(0.0, lo - y) + 2 / alpha * max(0.0, y - hi)


def band(n: int, tail: float = 0.005, level: float = LEVEL) -> tuple[int, int]:
    """Counts of n an interval of true coverage ``level`` lands in with probability 1 - 2 tail:
    the binomial quantiles a two-sided coverage test accepts."""
    return int(binom.ppf(tail, n, level)), int(binom.isf(tail, n, level))


def law_family(truth, design: str, seed: int, n_boot: int = 200) -> dict:
    """One family's CIs of a, b and D*/N* (isoFLOP route), each (lo, hi, truth); the ratio's CI
    also against what Approach 2 converges to on this design (the noise-free fit): its bootstrap
    carries the runs' noise, and its bias is laws/approach2_bias.py's to estimate."""
    budgets, _, per, span = DESIGNS[design]
    fit = fit_isoflop(truth_runs(truth, budgets, per, span, NOISE, seed), "total", n_boot, seed)
    a, b = true_exponents(truth, budgets)
    n, d, _ = true_optimum(truth, fit.ratio_budget)
    limit = fit_isoflop(truth_runs(truth, budgets, per, span, 0.0, 0), "total", 0).ratio
    iv = fit.ratio_interval
    return {
        "a": (fit.n_law.interval.lo, fit.n_law.interval.hi, a),
        "b": (fit.d_law.interval.lo, fit.d_law.interval.hi, b),
        "ratio": (iv.lo, iv.hi, d / n),
        "ratio vs Approach 2's limit": (iv.lo, iv.hi, limit),
    }


def outcome_family(truth, design: str, seed: int, n_boot: int = 200) -> dict:
    """One family's PIs (and the law's CI) of one new run and of a new budget's vertex at the
    design's held-out budget, each (lo, hi, measured)."""
    budgets, held, per, span = DESIGNS[design]
    runs = truth_runs(truth, budgets, per, span, NOISE, seed)
    fit, par = fit_for_prediction(runs, "total", n_boot, seed)
    rng = np.random.default_rng(10_000 + seed)
    n_pred = float(fit.n_law(held))
    grid = 10 ** np.arange(5, 13, GRID_STEP)
    size = float(grid[np.argmin(abs(np.log(grid / n_pred)))])
    run_pi, _ = outcome_interval(fit, runs, held, [size], par, seed=seed)
    y_run = float(truth(size, held / (6 * size))) * math.exp(NOISE * rng.standard_normal())
    sizes = n_pred * 10 ** np.linspace(-span, span, per)
    ys = [float(truth(s, held / (6 * s))) * math.exp(NOISE * rng.standard_normal()) for s in sizes]
    c2, c1, c0 = np.polyfit(np.log10(sizes), ys, 2)
    xv = -c1 / (2 * c2)
    vertex = float(c0 + c1 * xv + c2 * xv * xv)
    vertex_pi, _ = outcome_interval(fit, runs, held, list(sizes), par, seed=seed)
    ci = fit.predict(held).loss
    return {
        "run_pi": (run_pi.lo, run_pi.hi, y_run),
        "vertex_pi": (vertex_pi.lo, vertex_pi.hi, vertex),
        "vertex_ci": (ci.lo, ci.hi, vertex),
    }


def score(records: list[dict]) -> dict:
    """Per quantity: hits, n, mean interval score, median width."""
    out = {}
    for key in records[0]:
        rows = [r[key] for r in records]
        hits = sum(lo <= y <= hi for lo, hi, y in rows)
        out[key] = {
            "hits": hits,
            "n": len(rows),
            "interval_score": float(np.mean([interval_score(lo, hi, y) for lo, hi, y in rows])),
            "width": float(np.median([hi - lo for lo, hi, _ in rows])),
        }
    return out


def multiplier_family(truth, design: str, seed: int, m: float = 1.3, n_boot: int = 400) -> dict:
    """One pair of lines on a shared design (the same cells, as an ablation's arms): B's tokens
    are worth 1/m of A's, L_B(N, D) = L_A(N, D/m), so L*_B(C) = L*_A(C/m) for any truth and B
    needs exactly m times the compute. The CI of m at the common budget, (lo, hi, m)."""
    from miniseries.laws.base import Run
    from miniseries.laws.compare import compare_lines

    budgets, _, per, span = DESIGNS[design]
    a = truth_runs(truth, budgets, per, span, NOISE, seed)
    rng = np.random.default_rng(50_000 + seed)
    b = [
        Run(r.params, r.tokens, r.flops, float(truth(r.params, r.tokens / m))
            * math.exp(NOISE * rng.standard_normal()), budget=r.budget)
        for r in a
    ]  # fmt: skip
    iv = compare_lines(a, b, n_bootstrap=n_boot, seed=seed).headline.m
    return {"m": (iv.lo, iv.hi, m)}
