"""The raise-the-line ledger (docs/raise-the-line.md): every arm on the same design with exactly
its change; the compute multiplier recovered from a planted effective-compute gain; the verdict,
worth and LR-check rules against hand cases. Nothing here trains."""

import math

import numpy as np
import pytest

from miniseries.cli.ablate import parse_arm
from miniseries.errors import UserError
from miniseries.jobs.raise_line import (
    ALL,
    CHANGES,
    LedgerConfig,
    arm_overrides,
    arm_specs,
    check_specs,
    middle_cell,
    reference_tokens,
)
from miniseries.study.ledger import compare_change, lr_moved, verdict, worth

COMMON = dict(data=".", tokenizer=".")


def test_every_arm_trains_the_same_design_with_exactly_its_change():
    cfg = LedgerConfig(changes=("smear", "muon_wd", "batch"), custom={"wide": {"softcap": 30.0}})
    arms = arm_overrides(cfg)
    assert list(arms) == ["base", "smear", "muon_wd", "batch", "wide", ALL]
    ref = reference_tokens(cfg)
    assert arms["muon_wd"] == {"muon_weight_decay": 0.28, "ref_tokens": ref}
    assert arms[ALL] == {"smear": True, "muon_weight_decay": 0.28, "ref_tokens": ref,
                         "batch_exponent": 0.383}  # fmt: skip
    cells = {a: arm_specs(cfg, COMMON, a, ov) for a, ov in arms.items()}
    base = cells["base"]
    for a, specs in cells.items():
        assert set(specs) == set(base)  # the same (budget, depth) cells
        for cell, (s,) in specs.items():
            for k, v in arms[a].items():
                assert s.overrides[k] == v
            plan = s.plan()  # every arm spends the cell's budget, to within one step
            assert abs(plan.flops - cell[0]) <= plan.flops_per_token * plan.batch_tokens
    assert len({s.run_id for a in cells.values() for (s,) in a.values()}) == 6 * len(base)
    c, d = middle_cell(cfg)
    checks = check_specs(cfg, COMMON, "smear", arms["smear"])
    assert [(s.budget, s.depth, s.lr_mult) for s in checks] == [(c, d, 0.7), (c, d, 1.4)]
    with pytest.raises(UserError, match="unknown change"):
        arm_overrides(LedgerConfig(changes=("nope",)))


def test_reference_horizon_is_the_geometric_mean_of_the_base_tokens():
    from miniseries.jobs.recipe_ablation import base_tokens, design

    cfg = LedgerConfig()
    tokens = [base_tokens(cfg, d, c) for c, ds in design(cfg).items() for d in ds]
    assert reference_tokens(cfg) == round(float(np.exp(np.mean(np.log(tokens)))))
    assert set(CHANGES) >= set(cfg.changes)


def test_parse_arm():
    assert parse_arm("wide:aspect_ratio=10,smear=true,window_pattern=SL") == (
        "wide", {"aspect_ratio": 10, "smear": True, "window_pattern": "SL"})  # fmt: skip
    for bad in ("wide", "wide:", ":a=1", "wide:a"):
        with pytest.raises(UserError, match="--arm wants"):
            parse_arm(bad)


def test_worth_and_verdict_by_hand():
    assert worth([0.8, 0.7, 0.9]) == pytest.approx([1.25, 1 / 0.9, 1 / 0.7])
    assert verdict([[1.2, 1.1, 1.3], [1.1, 1.01, 1.2]]) == "gain"
    assert verdict([[0.9, 0.8, 0.95], [0.8, 0.7, 0.9]]) == "loss"
    assert verdict([[1.2, 1.1, 1.3], [0.8, 0.7, 0.9]]).startswith("mixed")
    assert verdict([[1.2, 1.1, 1.3], [1.0, 0.9, 1.1]]).startswith("no evidence")


def test_lr_check_moves_only_beyond_the_threshold():
    rows = [dict(lr_mult=1.0, val_bpb=3.00), dict(lr_mult=0.7, val_bpb=2.99),
            dict(lr_mult=1.4, val_bpb=2.95)]  # fmt: skip
    assert lr_moved(rows, 1.0, 0.027) == 1.4  # 0.05 better
    assert lr_moved(rows, 1.0, 0.06) == 1.0  # within the threshold
    assert lr_moved(rows[:1], 1.0, 0.0) == 1.0


def planted_rows(k: float, rng, sd=0.002):
    """isoFLOP rows of L(N, D) = 1.8 + 400 / N^0.34 + 300 / D^0.28 (bpb-like); the arm's model
    behaves as base's with N and D both x sqrt(k): worth k in compute at every budget."""
    rows = []
    for c in (2e11, 3.6e11, 6.3e11):
        grid = np.geomspace(1e3, 1e8, 4000)  # base's optimum at c, numerically
        n_opt = grid[np.argmin(400 / grid**0.34 + 300 / (c / (6 * grid)) ** 0.28)]
        for j, n in enumerate(n_opt * np.geomspace(0.35, 2.8, 5)):
            d = c / (6 * n)
            loss = 1.8 + 400 / (math.sqrt(k) * n) ** 0.34 + 300 / (math.sqrt(k) * d) ** 0.28
            rows.append(dict(params_total=n, params_effective=n, tokens=d, flops=c, budget=c,
                             depth=j + 1, run_id=f"{c:.3g}-{j}",
                             val_bpb=loss + rng.normal(0, sd)))  # fmt: skip
    return rows


def test_planted_compute_gain_is_recovered_with_an_interval_that_holds_it():
    rng = np.random.default_rng(0)
    base = planted_rows(1.0, rng)
    arm = planted_rows(1.5, rng)
    r = compare_change(base, arm, "planted", n_bootstrap=200)
    middle = next(m for m in r["marks"] if "middle" in m["where"])
    p, lo, hi = middle["worth"]
    assert lo < 1.5 < hi and lo > 1  # the truth inside, and the gain detected
    assert p == pytest.approx(1.5, rel=0.15)
    assert r["verdict"] == "gain"
    # a gain in compute is not a change of exponents: Δa, Δb hold 0
    t = r["conventions"]["total"]
    assert t["a_diff"][1] < 0 < t["a_diff"][2] and t["b_diff"][1] < 0 < t["b_diff"][2]
    same = compare_change(base, planted_rows(1.0, rng), "same", n_bootstrap=200)
    assert same["verdict"].startswith("no evidence")


def test_ledger_table_and_report_section_from_a_planted_ledger(tmp_path):
    import json

    from miniseries.report.ledger_section import ledger_sections
    from miniseries.study.ledger import analyse, markdown

    rng = np.random.default_rng(1)
    arm_rows = {"base": {"all": planted_rows(1.0, rng)}, "gain": {"all": planted_rows(2.0, rng)}}
    result = analyse(arm_rows, {"gain": [dict(lr_mult=1.0, val_bpb=3.0)]},
                     {"gain": {"smear": True}}, {}, 0.0274, n_bootstrap=100,
                     log=lambda *_: None)  # fmt: skip
    (row,) = [r for r in markdown(result).splitlines() if r.startswith("| gain | x")]
    assert "gain" in row.split("|")[7]  # the verdict column
    assert ledger_sections(tmp_path) == []  # no ledger in this project: no section
    (tmp_path / "raise-the-line.json").write_text(json.dumps(result))
    (s,) = ledger_sections(tmp_path)
    (table,) = [b for b in s.blocks if b[0] == "table"]
    assert table[2][0][0] == "gain" and table[2][0][1].startswith("x2.")
