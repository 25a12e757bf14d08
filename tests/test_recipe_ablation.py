"""The recipe attribution (docs/recipe-ablation.md): each arm changes exactly its factor, by the
protocol's rule; the LR rule, the noise pooling and the decision rule against hand computations
and planted truths. Nothing here trains (the attribution's runs are CPU-hours of work)."""

import math

import numpy as np
import pytest

from miniseries.config import CPU_V1 as CPU  # the attribution was measured on v1
from miniseries.jobs.recipe_ablation import (
    ARMS,
    GOLD_GRID,
    RecipeConfig,
    arm_specs,
    batch_for,
    design,
    gold_specs,
    noise_specs,
    ramp_for,
)
from miniseries.plan import plan_isoflop
from miniseries.study.attribution import (
    Z90,
    best_multiplier,
    decide,
    fit_lr_rule,
    pooled_noise,
)
from miniseries.train.optim import OptimConfig

COMMON = dict(data=".", tokenizer=".")


class PlantedRule:
    def multiplier(self, steps, params):
        return 2.0


@pytest.fixture(scope="module")
def arms():
    cfg = RecipeConfig()
    return cfg, {a: arm_specs(cfg, COMMON, a, PlantedRule()) for a in ARMS}


def test_design_is_the_demo_budgets_with_rule_placed_windows():
    cfg = RecipeConfig()
    w = design(cfg)
    assert sorted(w) == [2e11, 3.6e11, 6.3e11, 1.1e12]
    assert all(len(ds) == 5 and ds == list(range(ds[0], ds[0] + 5)) for ds in w.values())
    # windows never move left as the budget grows (the preset ratio's N* grows with C)
    firsts = [w[c][0] for c in sorted(w)]
    assert firsts == sorted(firsts)


def test_each_arm_changes_only_its_factor(arms):
    cfg, a = arms
    for cell, (base,) in a["base"].items():
        steps = plan_isoflop(cell[1], cell[0], CPU).steps
        assert base.steps == steps and base.seed == 0 and base.lr_mult == 1 and not base.overrides
        (s1,) = a["seed1"][cell]
        assert s1.seed == 1 and s1.overrides == {} and s1.steps == steps
        (mo,) = a["momentum"][cell]
        ramp = min(300, round(0.1 * steps))
        if ramp == 300:
            assert mo.run_id == base.run_id  # the same run: trained once
        else:
            assert mo.overrides == {"muon_momentum": [0.85, 0.95, ramp]} and mo.steps == steps
        (wd,) = a["warmdown"][cell]
        assert wd.overrides == {"warmdown_ratio": 0.65, "final_lr_frac": 0.05}
        (lr,) = a["lr_rule"][cell]
        assert lr.lr_mult == 2.0 and lr.overrides == {} and lr.steps == steps
        (bt,) = a["batch"][cell]
        b = bt.overrides.get("batch_tokens", 1024)
        assert bt.lr_mult == pytest.approx(math.sqrt(b / 1024), rel=5e-3)  # 3 significant figures
        # the same budget at another batch: whole steps of b tokens, within one step of it
        assert abs(bt.steps * b - base.steps * 1024) <= b
    ids = {a_: {s.run_id for ss in cells.values() for s in ss} for a_, cells in a.items()}
    assert not ids["seed1"] & ids["base"] and not ids["warmdown"] & ids["base"]


def test_recipe_overrides_reach_the_optimizer(arms):
    _, a = arms
    cell = next(c for c, (s,) in a["momentum"].items() if s.overrides)
    (mo,) = a["momentum"][cell]
    (wd,) = a["warmdown"][cell]
    ocfg = OptimConfig.from_preset(mo.preset_config())
    assert ocfg.muon_momentum == (0.85, 0.95, mo.overrides["muon_momentum"][2])
    ocfg = OptimConfig.from_preset(wd.preset_config())
    assert (ocfg.warmdown_ratio, ocfg.final_lr_frac) == (0.65, 0.05)
    base = OptimConfig.from_preset(CPU)
    assert (base.warmdown_ratio, base.final_lr_frac, base.muon_momentum) == (
        0.4,
        0.0,
        (0.85, 0.95, 300),
    )


def test_batch_and_ramp_rules_by_hand():
    # D = D_ref: 1024; D = 4 D_ref: 1024 * 4^0.383 = 1744 -> nearest power of two 2048
    assert batch_for(1e6, 1e6, CPU) == 1024
    assert batch_for(4e6, 1e6, CPU) == 2048
    assert batch_for(1e6 / 4, 1e6, CPU) == 512  # 1024 / 1.70 = 601 -> 512
    assert batch_for(1e12, 1e6, CPU) == 8192 and batch_for(1.0, 1e6, CPU) == 256  # kept in range
    assert ramp_for(145) == 14 and ramp_for(2999) == 300 and ramp_for(4662) == 300


def test_gold_grid_and_noise_cells():
    cfg = RecipeConfig()
    gold = gold_specs(cfg, COMMON)
    assert {c for c, _ in gold} == {2e11, 3.6e11, 6.3e11}  # the reduced design
    assert all(sorted(s.lr_mult for s in ss) == list(GOLD_GRID) for ss in gold.values())
    base = arm_specs(cfg, COMMON, "base")
    for cell, ss in gold.items():  # gold's x1 point is base's run
        assert next(s for s in ss if s.lr_mult == 1).run_id == base[cell][0].run_id
    noise = noise_specs(cfg, COMMON)
    assert sorted((s.depth, s.budget, s.seed) for s in noise) == sorted(
        (d, c, k) for d, c in cfg.noise_cells for k in range(4)
    )


def _rows(mults, losses, **kw):
    return [dict(lr_mult=m, val_bpb=v, **kw) for m, v in zip(mults, losses)]


def test_best_multiplier_is_the_vertex_of_a_planted_parabola():
    # loss = 3 + 0.1 (log m - log 1.2)^2: best grid point 1.4 (closer to 1.2 in log m than 1 is);
    # the parabola through 1, 1.4, 2 is the planted one, so its vertex is exactly 1.2
    f = lambda m: 3 + 0.1 * (math.log(m) - math.log(1.2)) ** 2  # noqa: E731
    grid, m_star = best_multiplier(_rows(GOLD_GRID, [f(m) for m in GOLD_GRID]))
    assert grid == 1.4 and m_star == pytest.approx(1.2, rel=1e-9)
    # best at an edge: the edge itself
    assert best_multiplier(_rows(GOLD_GRID, [5, 4, 3, 2, 1])) == (2.0, 2.0)


def test_lr_rule_recovers_planted_exponents():
    """m* = 1.3 (S/300)^-0.3 (N/N0)^0.1 planted at cells with independent S and N: the fit's
    coefficients are the planted ones and the residual is zero."""
    rng = np.random.default_rng(0)
    cells = {}
    for i in range(12):
        steps, n = int(rng.integers(100, 5000)), float(rng.uniform(2e4, 4e5))
        m_true = 1.3 * (steps / 300) ** -0.3 * (n / 1e5) ** 0.1
        f = lambda m, mt=m_true: 3 + 0.05 * (math.log(m) - math.log(mt)) ** 2  # noqa: E731
        grid = [m_true / 1.4, m_true, m_true * 1.4]  # the vertex sits at the planted m
        cells[(1e11 * (i + 1), 1)] = _rows(grid, [f(m) for m in grid], steps=steps, params_total=n)
    rule = fit_lr_rule(cells)
    n_ref = rule.n_ref
    assert rule.c1 == pytest.approx(-0.3, abs=1e-9) and rule.c2 == pytest.approx(0.1, abs=1e-9)
    assert math.exp(rule.c0) == pytest.approx(1.3 * (n_ref / 1e5) ** 0.1, rel=1e-9)
    assert rule.resid_sd < 1e-9
    assert rule.multiplier(300, 1e5) == pytest.approx(1.3, rel=2e-3)  # 3 significant figures


def test_pooled_noise_by_hand():
    rows = [dict(depth=1, budget=1.0, val_bpb=v) for v in (1.0, 1.2, 1.4)]
    rows += [dict(depth=2, budget=1.0, val_bpb=v) for v in (2.0, 2.1)]
    # SS = 0.08 + 0.005 over 2 + 1 dof
    sd, dof = pooled_noise(rows)
    assert dof == 3 and sd == pytest.approx(math.sqrt(0.085 / 3))


def test_decision_rule():
    sd = 0.01
    t = Z90 * math.sqrt(2) * sd  # 0.0233
    v = lambda *ds: {f"{i}": [3.0, 3.0 + d, d] for i, d in enumerate(ds)}  # noqa: E731
    assert decide(v(-0.03, 0.0, 0.01), sd) == "adopted"
    assert decide(v(-0.03, t + 1e-4), sd) == "rejected"
    assert decide(v(-0.02, 0.02), sd) == "no evidence"
    assert decide({}, sd).startswith("no evidence")


def test_lr_rule_is_a_no_op_when_off_and_scales_every_lr_when_on(tiny_data, tmp_path):
    """Preset.lr_rule: off (the v1 presets), a trainer's initial LRs are the preset's; on, every
    group's LR is x scale (S/300)^h (N/77.5K)^s, by hand from the run's steps and params."""
    from miniseries.accounting import param_counts
    from miniseries.train.trainer import TrainConfig, Trainer

    tokens, tok = tiny_data
    tiny = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 4}

    def lrs(**rule):
        cfg = TrainConfig(depth=2, out=str(tmp_path / str(len(rule))), data=str(tokens),
                          tokenizer=str(tok), steps=1200, overrides=dict(tiny, **rule))  # fmt: skip
        t = Trainer(cfg, progress=False)
        n = param_counts(t.model_cfg).total
        return [g["initial_lr"] for o in t.optimizers for g in o.param_groups], n

    off, n = lrs()
    assert CPU.lr_rule(1200, n) == 1.0 and off == lrs(lr_rule_scale=1.0)[0]
    on, _ = lrs(lr_rule_scale=1.5, lr_horizon_exponent=-0.5, lr_size_exponent=-0.2)
    want = 1.5 * (1200 / 300) ** -0.5 * (n / 77_500) ** -0.2
    assert on == pytest.approx([x * want for x in off], rel=1e-12)
