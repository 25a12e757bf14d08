"""The extrapolation table: nanochat's own law and quotes, intervals, sanity row, chance honesty,
and the two CLI subcommands (run through a parser built here)."""

import argparse
import csv
import io
import json

import numpy as np
import pytest

from miniseries import reference as ref
from miniseries.calibrate import BpbLaw, CoreFit, fit_core_law, fit_series
from miniseries.errors import UserError
from miniseries.extrapolate import Hardware, ScalingLaws, default_targets, extrapolation_table

NANOCHAT = CoreFit.from_law(*ref.NANOCHAT_CORE_LAW)


def test_nanochat_law_inverts_to_5p7e23_for_gpt3_175b():
    """nanochat quotes ~5.7e23 FLOPs for CORE 0.427. Its A and k are printed to 5 and 3 significant
    figures; k = 0.0344 ± 0.00005 alone moves C by ±8%, so we allow 10%."""
    flops = NANOCHAT.flops_for_core(ref.NANOCHAT_GPT3_CORE["GPT-3 175B"]).point
    assert flops == pytest.approx(ref.NANOCHAT_QUOTES["GPT-3 175B"]["flops"], rel=0.10)


def test_nanochat_cost_quotes_are_consistent_with_one_mfu():
    """nanochat's "GPT-2 small in ~8 min / ~$3" and "GPT-2 XL in ~22.7 h / ~$546" (8×H100 at
    $3/h) must come from one MFU: both imply ~0.44 (their measured MFU), within 5% of each other."""
    q = ref.NANOCHAT_QUOTES
    at_half = Hardware(mfu=0.5)
    small = at_half.hours(NANOCHAT.flops_for_core(0.1139).point)
    xl = at_half.hours(NANOCHAT.flops_for_core(0.2565).point)
    mfu_small = 0.5 * small / (q["GPT-2 small"]["minutes"] / 60)
    mfu_xl = 0.5 * xl / q["GPT-2 XL"]["hours"]
    assert mfu_small == pytest.approx(mfu_xl, rel=0.05)
    hw = Hardware(mfu=(mfu_small + mfu_xl) / 2)
    table = extrapolation_table(NANOCHAT, None, hardware=hw, targets={"GPT-2 XL": 0.2565})
    assert table.rows[0]["usd"] == pytest.approx(q["GPT-2 XL"]["usd"], rel=0.05)
    assert table.rows[0]["hours"] == pytest.approx(q["GPT-2 XL"]["hours"], rel=0.05)


def test_hardware_arithmetic():
    hw = Hardware(gpus=2, peak_flops=1e15, mfu=0.5, gpu_hour_usd=4.0)
    assert hw.hours(3.6e18) == pytest.approx(1.0)  # 3.6e18 / (2 × 5e14 FLOP/s) = 3600 s
    assert hw.dollars(3.6e18) == pytest.approx(8.0)
    with pytest.raises(UserError):
        Hardware(mfu=1.5)


def test_constant_ratio_laws_spend_the_budget():
    laws = ScalingLaws.constant_ratio(20)
    for c in (1e18, 3.14e23):
        n, d = laws.n_opt(c), laws.d_opt(c)
        assert 6 * n * d == pytest.approx(c)
        assert d / n == pytest.approx(20)


def _synthetic_fit(seed=0):
    rng = np.random.default_rng(seed)
    c = np.logspace(18, 20, 8)
    core = NANOCHAT.model.core(c) + rng.normal(0, 0.003, 8)
    return fit_core_law(c, core, n_boot=100, seed=seed)


def test_table_rows_intervals_and_monotonic_costs():
    fit = _synthetic_fit()
    laws = ScalingLaws.constant_ratio(8)
    depths = []
    table = extrapolation_table(
        fit, None, laws, Hardware(), depth_for_params=lambda n: depths.append(n) or 7
    )
    names = [r["target"] for r in table.rows]
    assert names[:4] == ["GPT-2 Small", "GPT-2 Medium", "GPT-2 Large", "GPT-2 XL"]
    assert len(names) == 12 and names[-1] == "GPT-3 175B"
    for r in table.rows:
        for key in ("flops", "params", "tokens", "hours", "usd"):
            assert r[f"{key}_lo"] <= r[key] <= r[f"{key}_hi"], (r["target"], key)
            assert r[f"{key}_lo"] < r[f"{key}_hi"]  # bootstrap samples give a real interval
        assert r["depth"] == 7
    assert depths  # the callable was consulted
    by_core = sorted(table.rows, key=lambda r: r["core"])
    assert [r["flops"] for r in by_core] == sorted(r["flops"] for r in by_core)
    assert table.sanity["ok"] and "OK" in table.sanity["verdict"]


def test_table_outputs_agree():
    table = extrapolation_table(_synthetic_fit(), None, ScalingLaws.constant_ratio(8))
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert len(rows) == len(table.to_rows()) == 12
    assert float(rows[0]["flops"]) == pytest.approx(table.rows[0]["flops"])
    doc = json.loads(table.to_json())
    assert doc["mode"] == "core" and doc["sanity"]["target"] == "GPT-3 175B"
    md = table.to_markdown()
    assert "| GPT-3 175B |" in md and "sanity: GPT-3 175B" in md


def test_sanity_row_says_how_far_off():
    slow = CoreFit.from_law(3.7555, 0.02)  # a much flatter law: far too many FLOPs for GPT-3
    table = extrapolation_table(slow, None, targets={"GPT-3 175B": 0.427})
    assert not table.sanity["ok"]
    assert table.sanity["ratio"] > 10 and "off by ×" in table.sanity["verdict"]


def test_laws_samples_give_intervals_without_core_samples():
    laws = ScalingLaws(
        0.1, 0.5, 1.6, 0.5, samples=((0.09, 0.49, 1.7, 0.51), (0.11, 0.51, 1.5, 0.49))
    )
    row = extrapolation_table(NANOCHAT, None, laws, targets={"x": 0.2}).rows[0]
    assert row["flops_lo"] == row["flops"] == row["flops_hi"]  # a law given as numbers
    assert row["params_lo"] < row["params_hi"]


def test_default_targets_use_measured_gpt2_and_estimated_gpt3():
    t = default_targets()
    assert t["GPT-2 XL"] == 0.2565
    assert t["GPT-3 175B"] == pytest.approx(0.427, abs=0.001)


def test_chance_series_gives_bpb_only_table_and_never_a_core_curve():
    rng = np.random.default_rng(5)
    c = np.array([2e12, 4.5e12, 1e13, 2.2e13, 5e13])
    bpb = BpbLaw(1.2, 40.0, 0.12).bpb(c) + rng.normal(0, 0.003, 5)
    fit = fit_series(c, rng.normal(0, 0.004, 5), bpb, core_se=0.004, n_boot=50)
    assert fit.core_fit is None
    table = extrapolation_table(
        fit.core_fit,
        fit.bpb_fit,
        ScalingLaws.constant_ratio(8),
        chance=fit.chance,
        budgets=(1e14, 1e16),
        bpb_targets=(1.5,),
    )
    assert table.mode == "bpb"
    assert "CORE indistinguishable from chance" in table.title
    assert sum("CORE indistinguishable from chance" in n for n in table.notes) == 1
    assert all("core" not in r and "target" not in r for r in table.rows)
    assert "GPT-3" not in table.to_csv()
    assert len(table.rows) == 3
    assert table.rows[0]["bpb"] > table.rows[1]["bpb"]  # more compute, lower bpb
    assert table.rows[2]["flops"] == pytest.approx(fit.bpb_fit.law.flops_for_bpb(1.5))
    with pytest.raises(UserError):
        extrapolation_table(None, None)


# --- CLI (through a parser built here; `miniseries` registration is the lead's) ----------------


def _run(capsys, *argv):
    from miniseries.cli import calibrate, extrapolate

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    calibrate.add_parser(sub)
    extrapolate.add_parser(sub)
    args = parser.parse_args(list(argv))
    assert args.run(args) == 0
    return capsys.readouterr().out


def test_cli_calibrate_json(capsys):
    doc = json.loads(_run(capsys, "calibrate", "--json"))
    assert doc["simple"]["slope"] == pytest.approx(0.6639, abs=5e-4)
    assert len(doc["gpt3"]) == 8


def test_cli_calibrate_table(capsys):
    out = _run(capsys, "calibrate")
    assert "GPT-3 175B" in out and "0.4271" in out and "LOO" in out


def test_cli_extrapolate_core_law(capsys):
    doc = json.loads(
        _run(
            capsys,
            "extrapolate",
            "--core-law",
            "3.7555,0.0344",
            "--ratio",
            "8",
            "--depth-preset",
            "gpu",
            "--json",
        )
    )
    assert doc["sanity"]["ok"]
    assert doc["sanity"]["predicted_flops"] == pytest.approx(5.44e23, rel=0.02)
    assert doc["rows"][0]["depth"] == 13  # 1.9e8 params (total): nanochat's gpu family at d13


def test_cli_extrapolate_chance_csv(tmp_path, capsys):
    path = tmp_path / "series.csv"
    path.write_text(
        "flops,core,bpb,core_se,mfu\n"
        "2e12,0.003,2.10,0.004,0.3\n4.5e12,-0.002,1.98,0.004,0.3\n1e13,0.001,1.88,0.004,0.3\n"
        "2.2e13,0.004,1.80,0.004,0.3\n5e13,-0.001,1.73,0.004,0.3\n"
    )
    out = _run(capsys, "extrapolate", "--from-csv", str(path), "--mfu", "measured", "--csv")
    assert out.splitlines()[0].startswith("budget,bpb")
    assert "GPT" not in out
    text = _run(capsys, "extrapolate", "--from-csv", str(path), "--n-boot", "20")
    assert "indistinguishable from chance" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--core-law", "3.7,x"],
        ["--core-law", "3.7,0.03", "--mfu", "measured"],
        ["--core-law", "3.7,0.03", "--mfu", "2"],
        ["--core-law", "3.7,0.03", "--laws", "1,2,3"],
        ["--core-law", "3.7,0.03", "--depth-preset", "tpu", "--ratio", "8"],
        ["--from-csv", "/nonexistent/series.csv"],
    ],
)
def test_cli_extrapolate_user_errors(argv, capsys):
    with pytest.raises(UserError):
        _run(capsys, "extrapolate", *argv)
