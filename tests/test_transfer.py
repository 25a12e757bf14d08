"""LR transfer: per-depth optima from parabolas in log2 LR, and the loss-penalty verdict."""

import math

import numpy as np
import pytest

from miniseries.laws.lr_transfer import PENALTY_TOL, lr_optimum, transfer_check

GRID = 2.0 ** np.arange(-3, 3.5, 0.5)  # x1/8 .. x8 in half-octaves


def sweep(x_opt: float, loss_opt: float = 2.0, k: float = 0.02, grid=GRID):
    """Loss = L*(1 + k (log2 lr - x*)^2): k is the relative penalty per log2 unit squared."""
    return [(float(lr), loss_opt * (1 + k * (math.log2(lr) - x_opt) ** 2)) for lr in grid]


def test_lr_optimum_recovers_the_vertex_between_grid_points():
    o = lr_optimum(sweep(0.3))
    assert o["lr_mult"] == pytest.approx(2**0.3, rel=1e-9)
    assert o["loss"] == pytest.approx(2.0, rel=1e-9)
    assert o["curvature"] == pytest.approx(0.02, rel=1e-6)
    assert o["best_grid"] == pytest.approx(2**0.5) and not o["edge"] and o["flag"] is None


def test_lr_optimum_averages_repeats_and_flags_the_grid_edge():
    pts = sweep(0.0) + [(1.0, 2.0 + 0.01), (1.0, 2.0 - 0.01)]  # seeds around the optimum
    assert lr_optimum(pts)["lr_mult"] == pytest.approx(1.0, abs=1e-6)
    edge = lr_optimum(sweep(5.0))  # true optimum beyond x8
    assert edge["edge"] and "largest" in edge["flag"] and edge["lr_mult"] == 8.0
    low = lr_optimum(sweep(-5.0))
    assert low["edge"] and "smallest" in low["flag"]
    assert "need 3" in lr_optimum(sweep(0, grid=[0.5, 1.0]))["flag"]
    with pytest.raises(ValueError):
        lr_optimum([(0.0, 2.0), (1.0, 2.0), (2.0, 2.1)])


def test_flat_optima_transfer():
    rng = np.random.default_rng(0)
    results = {d: sweep(0.15 * rng.standard_normal(), 2.4 - 0.1 * d) for d in (1, 2, 4, 8)}
    v = transfer_check(results)
    assert v.ok, v.summary()
    assert v.summary().startswith("LR transfers")
    assert abs(math.log2(v.common_lr)) < 0.3
    assert max(v.penalties.values()) < PENALTY_TOL


def test_planted_width_drift_fails_and_names_depths():
    # optimum ∝ width^-1 with width ∝ depth: x* = -log2(depth), 3 octaves over depths 1..8
    results = {d: sweep(-math.log2(d), 2.4 - 0.1 * d) for d in (1, 2, 4, 8)}
    v = transfer_check(results)
    assert not v.ok
    assert v.drift == pytest.approx(-1.0, abs=0.05)
    assert v.spread_log2 == pytest.approx(3.0, abs=0.05)
    named = " ".join(v.violations)
    assert "depth 1" in named and "depth 8" in named  # the extremes lose the most
    assert "does NOT transfer" in v.summary()


def test_the_criterion_is_the_loss_penalty_not_the_spread():
    """The same 1-octave spread passes for a flat optimum and fails for a sharp one."""
    flat = {d: sweep(x, k=0.002) for d, x in ((2, -0.5), (4, 0.5))}
    sharp = {d: sweep(x, k=0.05) for d, x in ((2, -0.5), (4, 0.5))}
    assert transfer_check(flat).ok  # penalty 0.002 * 0.25 = 0.05%
    v = transfer_check(sharp)  # penalty 0.05 * 0.25 = 1.25%
    assert not v.ok and v.penalties[2] == pytest.approx(0.0125, rel=1e-3)


def test_an_optimum_at_the_grid_edge_is_a_violation():
    results = {2: sweep(0.0), 4: sweep(4.0)}  # depth 4's best LR is beyond the grid
    v = transfer_check(results)
    assert not v.ok and any("depth 4" in x and "grid edge" in x for x in v.violations)
