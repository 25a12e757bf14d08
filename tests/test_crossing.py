"""The crossing detector: clean synthetic profiles and curves pass, planted crossings are caught."""

import numpy as np
from synthetic import synthetic_runs

from miniseries.crossing import Curve, check, check_isoflop, check_series
from miniseries.laws.base import Run

BUDGETS = [1e18, 3e18, 1e19, 3e19]


def test_clean_isoflop_profiles_are_nested():
    runs = synthetic_runs(BUDGETS, per_budget=9, span=0.8, noise=0.0)
    verdict = check(runs=runs, curves=_clean_series())
    assert verdict.ok and verdict.violations == []
    expected = "curves nested: no crossings in 4 isoFLOP profiles and 4 miniseries runs"
    assert verdict.summary() == expected


def test_planted_isoflop_crossing_is_reported_with_both_budgets():
    runs = synthetic_runs(BUDGETS, per_budget=9, span=0.8, noise=0.0)
    # the 1e19 profile's largest sizes get 0.5 nats worse: above the 3e18 profile there
    planted = [
        Run(r.params, r.tokens, r.flops, r.loss + 0.5, budget=r.budget)
        if r.budget == 1e19 and r.params > 3e8
        else r
        for r in runs
    ]
    violations = check_isoflop(planted)
    assert violations and all(v.kind == "isoflop" for v in violations)
    assert ("C=3e+18", "C=1e+19") in [v.runs for v in violations]
    assert all(v.runs[1] == "C=1e+19" for v in violations)  # the bigger budget is the culprit
    worst = max(violations, key=lambda v: v.excess)
    assert worst.at > 3e8 and worst.excess > 0.1
    verdict = check(runs=planted)
    assert not verdict.ok
    assert verdict.summary().startswith("CROSSING:") and "miniseries lr-sweep" in verdict.summary()


def test_differences_within_tolerance_are_noise():
    runs = synthetic_runs(BUDGETS[:2], per_budget=7, span=0.8, noise=0.0)
    # push the bigger budget up by less than the 3e18-vs-1e18 gap minus the tolerance: fine
    bumped = [
        Run(r.params, r.tokens, r.flops, r.loss + 0.001 * (r.budget == 3e18), budget=r.budget)
        for r in runs
    ]
    assert check_isoflop(bumped, tol=0.002) == []
    # the same profile duplicated as a "bigger" budget is worse by 0, not beyond tolerance
    same = runs + [
        Run(r.params, r.tokens, r.flops, r.loss + 0.0015, budget=5e18)
        for r in runs
        if r.budget == 3e18
    ]
    assert check_isoflop(same, tol=0.002) == []
    assert check_isoflop(same, tol=0.001) != []


def _curve(name, total, offset, core=None, n=40):
    flops = np.logspace(np.log10(total) - 3, np.log10(total), n)
    loss = 2.0 + 40.0 * flops**-0.12 + offset
    return Curve(name, tuple(flops), tuple(loss), core)


def _clean_series():
    """Parallel curves, each bigger run lower at every FLOPs and longer: nothing crosses."""
    return [_curve(f"d{i}", 1e12 * 3**i, -0.05 * i, core=0.02 * i) for i in range(4)]


def test_clean_series_passes():
    assert check_series(_clean_series()) == []


def test_planted_training_curve_crossing():
    series = _clean_series()
    bad = series[2]
    # d2 is 0.3 worse over the last half of its curve: it ends above d1 (0.2 below it when clean)
    loss = np.array(bad.loss)
    loss[len(loss) // 2 :] += 0.3
    series[2] = Curve(bad.name, bad.flops, tuple(loss), bad.core)
    violations = check_series(series)
    kinds = {(v.kind, v.runs) for v in violations}
    assert ("curve", ("d1", "d2")) in kinds
    assert ("final-loss", ("d1", "d2")) in kinds
    assert all("d2" in v.runs for v in violations)
    verdict = check(curves=series)
    assert not verdict.ok and "lr-sweep" in verdict.summary()


def test_burn_in_ignores_early_crossings():
    series = _clean_series()
    big = series[3]
    loss = np.array(big.loss)
    loss[:3] += 1.0  # the first points of the biggest run: far inside its first 20% of FLOPs
    series[3] = Curve(big.name, big.flops, tuple(loss), big.core)
    assert check_series(series) == []
    assert check_series(series, burn_in=0.0) != []


def test_core_must_not_fall_with_compute():
    series = _clean_series()
    series[3] = Curve("d3", series[3].flops, series[3].loss, core=0.0)  # worse than d1, d2
    violations = check_series(series)
    assert {v.runs for v in violations if v.kind == "final-core"} == {("d1", "d3"), ("d2", "d3")}
    series[3] = Curve("d3", series[3].flops, series[3].loss, core=0.035)  # within core_tol of d2
    assert check_series(series) == []


def test_series_order_comes_from_compute_not_input_order():
    assert check_series(list(reversed(_clean_series()))) == []
