"""The planner: budgets to depths and back, and its errors."""

import json

import pytest

from miniseries.cli import main
from miniseries.config import CPU, GPU
from miniseries.errors import UserError
from miniseries.plan import (
    optimal_flops,
    plan_for_depth,
    plan_for_flops,
    plan_for_steps,
    plan_isoflop,
)


@pytest.mark.parametrize("preset", [CPU, GPU], ids=["cpu", "gpu"])
def test_plan_round_trips_within_one_depth_step(preset):
    for depth in range(2, 20):
        target = optimal_flops(depth, preset, 8.0, "total") * 1.1
        plan = plan_for_flops(target, preset, ratio=8.0)
        assert abs(plan.depth - depth) <= 1
        lo = optimal_flops(plan.depth - 1, preset, 8.0, "total") if plan.depth > 1 else 0
        hi = optimal_flops(plan.depth + 1, preset, 8.0, "total")
        assert lo <= target <= hi
        # the run spends the budget to within one optimizer step
        assert abs(plan.flops - target) <= plan.flops_per_token * plan.batch_tokens


def test_nanochat_v1_1e18_optimum():
    """nanochat miniseries v1: 1e18 FLOPs -> ~137M params, ~1.12B tokens at ratio 8 (total)."""
    plan = plan_for_flops(1e18, GPU, ratio=8)
    assert plan.depth in (12, 13)
    assert plan.params_total == pytest.approx(137e6, rel=0.05)
    assert plan.tokens == pytest.approx(1.12e9, rel=0.05)


def test_depth_ratio_and_isoflop_plans():
    p = plan_for_depth(4, CPU, ratio=8)
    assert p.tokens % CPU.batch_tokens == 0
    assert p.ratio == pytest.approx(8, rel=0.01)
    assert p.flops == p.flops_per_token * p.tokens
    iso = plan_isoflop(4, 1e12, CPU)
    assert iso.flops == pytest.approx(1e12, rel=0.01)
    assert plan_for_steps(3, 250, CPU).tokens == 250 * CPU.batch_tokens
    k = plan_for_depth(4, CPU, ratio=8, convention="kaplan")
    assert k.tokens == pytest.approx(8 * k.params_kaplan, rel=0.01)


@pytest.mark.parametrize(
    "call",
    [
        lambda: plan_for_depth(0, CPU),
        lambda: plan_for_flops(-1.0, CPU),
        lambda: plan_for_flops(10.0, CPU),
        lambda: plan_for_flops(1e40, CPU),
        lambda: plan_for_depth(3, CPU, convention="weird"),
        lambda: plan_for_depth(3, CPU, ratio=-2),
    ],
)
def test_bad_input_raises_user_error(call):
    with pytest.raises(UserError):
        call()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["plan", "--depth", "0"], "depth must be an integer from 1 to 64"),
        (["plan", "--flops", "-5"], "--flops"),
        (["plan", "--flops", "100"], "outside"),
        (["plan", "--flops", "1e12", "--preset", "tpu"], "unknown preset 'tpu'"),
        (["plan", "--depth", "3", "--convention", "x"], "unknown parameter convention"),
        (["plan"], "give --flops"),
    ],
)
def test_cli_errors_are_one_line_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) if argv[1:2] == ["--flops"] and argv[2] == "-5" else _nullctx():
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_cli_plan_json(capsys):
    assert main(["plan", "--flops", "1e18", "--preset", "gpu", "--ratio", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["depth"] == 12 and out["convention"] == "total"
    assert main(["plan", "--depth", "12", "--ratio", "8", "--preset", "gpu"]) == 0
    assert "D/N (total)" in capsys.readouterr().out
