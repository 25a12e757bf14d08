"""The miniseries' ratio rule (study/series_rule.py): per-depth ratios only when the law's ratio
trend is resolved, and then each depth's run spends exactly the compute at which the law's N* is
that depth's size (checked by the closed form N*(C) = k C^a)."""

import math
from types import SimpleNamespace

from miniseries.accounting import flops_per_token, param_counts
from miniseries.config import CPU
from miniseries.laws.base import Interval
from miniseries.study.series_rule import series_ratios

DEPTHS = [1, 2, 3, 4, 5, 6, 7]


def fit(trend: Interval, a=0.6, k=3.0):
    n_law = SimpleNamespace(k=k, exponent=a)
    return SimpleNamespace(n_law=n_law, ratio=7.9, ratio_trend_interval=trend)


def test_trend_holding_zero_keeps_one_ratio():
    ratios, text = series_ratios(fit(Interval(-0.1, -0.3, 0.05)), DEPTHS, CPU, "total")
    assert ratios == {d: 7.9 for d in DEPTHS} and "holds 0" in text


def test_resolved_trend_gives_each_depth_its_own_compute():
    a, k = 0.6, 3.0
    ratios, text = series_ratios(fit(Interval(-0.27, -0.33, -0.2), a, k), DEPTHS, CPU, "total")
    assert "excludes 0" in text
    for d in DEPTHS:
        cfg = CPU.model_config(d)
        n = param_counts(cfg).total
        c = ratios[d] * n * flops_per_token(cfg)  # the compute the run spends
        assert math.isclose(k * c**a, n, rel_tol=1e-9)  # the law's N* there is this depth
    # b - a < 0: the ratio falls with compute, so the bigger members train at smaller ratios
    assert all(ratios[d] > ratios[d + 1] for d in DEPTHS[:-1])


def test_no_law_falls_back_on_the_preset_ratio():
    f = SimpleNamespace(n_law=None, ratio=float("nan"), ratio_trend_interval=Interval(0, 0, 0))
    ratios, text = series_ratios(f, [1, 2], CPU, "total")
    assert ratios == {1: CPU.ratio, 2: CPU.ratio} and "preset" in text
