"""The extrapolation table: nanochat's own law and quotes, intervals, sanity row, chance honesty,
and the two CLI subcommands (run through a parser built here)."""

import argparse
import csv
import io
import json

import numpy as np
import pytest

from miniseries.errors import UserError
from miniseries.laws.flops_laws import (
    BpbLaw,
    CoreFit,
    Logistic,
    PowerCore,
    TwoStepCore,
    fit_core_law,
)
from miniseries.report import reference as ref
from miniseries.report.calibrate import fit_series
from miniseries.report.extrapolate import (
    FORM_DISAGREEMENT,
    MAX_DECADES,
    SANITY_FACTOR,
    Hardware,
    ScalingLaws,
    default_budgets,
    default_targets,
    extrapolation_table,
)

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
        budgets=(1e14, 1e15),
        bpb_targets=(1.9,),  # within 2 decades of the data: 1.5 is not
    )
    assert table.mode == "bpb"
    assert "CORE indistinguishable from chance" in table.title
    assert sum("CORE indistinguishable from chance" in n for n in table.notes) == 1
    assert all("core" not in r and "target" not in r for r in table.rows)
    assert "GPT-3" not in table.to_csv()
    assert len(table.rows) == 3
    assert table.rows[0]["bpb"] > table.rows[1]["bpb"]  # more compute, lower bpb
    assert table.rows[2]["flops"] == pytest.approx(fit.bpb_fit.law.flops_for_bpb(1.9))
    with pytest.raises(UserError):
        extrapolation_table(None, None)


# --- Limits: distance past the data, form disagreement, the sanity headline ------------------


def _known_fit(data_max, second=None):
    """CORE = 1 - 10·C^-0.1: CORE 0.9 needs exactly (10/0.1)^10 = 1e20 FLOPs (by hand)."""
    models = {"power": PowerCore(10.0, 0.1)}
    if second is not None:
        models["two-step"] = second
    nan = float("nan")
    return CoreFit("power", models, {f: nan for f in models}, {}, (data_max / 10, data_max))


@pytest.mark.parametrize(
    "data_max, decades, shown",
    [(1e19, 1.0, "+1.0 dec"), (1e17, 3.0, "+3.0 dec, speculative"), (1e21, -1.0, "inside data")],
)
def test_decades_past_data_known_by_hand(data_max, decades, shown):
    table = extrapolation_table(_known_fit(data_max), None, targets={"t": 0.9})
    row = table.rows[0]
    assert row["flops"] == pytest.approx(1e20)
    assert row["decades_past_data"] == pytest.approx(decades)
    assert row["speculative"] == (decades > MAX_DECADES)
    assert table.headers[table.columns.index("decades_past_data")] == "past data"
    assert table.display_rows()[0][table.columns.index("decades_past_data")] == shown
    n_spec = int(decades > MAX_DECADES)
    assert any(f"speculative: {n_spec} of 1" in n for n in table.notes)


def _two_step_reaching(core, flops):
    """A two-step model that reaches ``core`` at exactly ``flops``: bpb = B·C^-0.25 is 1 at
    C = B^4, and the logistic sigmoid(a - 3·bpb) with a = 3 + logit(core) is ``core`` at bpb 1."""
    link = Logistic(3.0 + float(np.log(core / (1 - core))), 3.0)  # CORE ``core`` at bpb 1
    return TwoStepCore(BpbLaw(0.0, flops**0.25, 0.25), link)


def test_forms_that_disagree_are_both_shown_and_the_interval_spans_both():
    second = _two_step_reaching(0.9, 1e21)  # power reaches 0.9 at 1e20: 10× apart
    fit = _known_fit(2e19, second)
    assert second.flops_for_core(0.9) == pytest.approx(1e21)
    table = extrapolation_table(fit, None, ScalingLaws.constant_ratio(8), targets={"t": 0.9})
    row = table.rows[0]
    assert row["forms_disagree"] and row["form_spread"] == pytest.approx(10.0)
    assert row["flops"] == pytest.approx(1e20)  # the chosen form's point
    assert row["flops_power"] == pytest.approx(1e20)
    assert row["flops_two-step"] == pytest.approx(1e21)
    assert row["flops_lo"] == pytest.approx(1e20) and row["flops_hi"] == pytest.approx(1e21)
    hw = Hardware()
    assert row["usd_hi"] == pytest.approx(hw.dollars(1e21))
    n_hi = ScalingLaws.constant_ratio(8).n_opt(1e21)
    assert row["params_hi"] == pytest.approx(n_hi)
    assert row["interval"] == "90% CI, spans both forms"
    cell = table.display_rows()[0][table.columns.index("flops")]
    assert cell == "1e+20 (power) / 1e+21 (two-step) [1e+20–1e+21] (90% CI, spans both forms)"
    doc = json.loads(table.to_json())
    assert doc["rows"][0]["flops_two-step"] == pytest.approx(1e21)
    assert doc["forms"] == ["power", "two-step"]
    assert any("disagree by more than ×2 on 1 of 1 rows" in n for n in table.notes)


def test_forms_within_the_factor_show_one_number():
    fit = _known_fit(2e19, _two_step_reaching(0.9, 1.5e20))
    assert 1.5 < FORM_DISAGREEMENT
    table = extrapolation_table(fit, None, targets={"t": 0.9})
    row = table.rows[0]
    assert not row["forms_disagree"]
    assert row["flops_lo"] == row["flops_hi"] == pytest.approx(1e20)  # no samples: no interval
    assert row["flops_two-step"] == pytest.approx(1.5e20)  # every form's number is still kept
    assert table.display_rows()[0][table.columns.index("flops")] == "1e+20"


def test_power_series_row_interval_holds_the_true_flops():
    """Series drawn from nanochat's law over 1e18–1e20 (10 runs, CORE noise 0.001, bpb given so
    both forms are fitted): the table's GPT-2 XL row (0.45 decades past the data) must hold the
    law's true FLOPs in its 90% CI. The percentile bootstrap on 10 points under-covers (7 of
    these 10 seeds), so at least 6 of 10 must. The point is within 12% every time: 4 sigma of
    ln FLOPs, whose spread (0.095 at noise 0.003 on 8 runs, test_calibrate) scales to ~0.028."""
    c = np.geomspace(1e18, 1e20, 10)
    truth = NANOCHAT.model.flops_for_core(0.2565)
    held = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        core = NANOCHAT.model.core(c) + rng.normal(0, 0.001, 10)
        bpb = 6.4 * c**-0.0474 * np.exp(rng.normal(0, 0.002, 10))
        fit = fit_core_law(c, core, bpb, n_boot=100, seed=seed)
        assert fit.chosen == "power"
        row = extrapolation_table(fit, None, targets={"GPT-2 XL": 0.2565}).rows[0]
        assert abs(np.log(row["flops"] / truth)) < 0.12
        assert row["decades_past_data"] == pytest.approx(np.log10(row["flops"] / 1e20))
        held += row["flops_lo"] <= truth <= row["flops_hi"]
    assert held >= 6


def test_sanity_fail_leads_the_title_and_names_the_factor():
    """CORE = 1 - 10·C^-0.1 puts GPT-3 175B's 0.427 at (10/0.573)^10 = 2.6e12 FLOPs: 1e11 below."""
    table = extrapolation_table(_known_fit(1e19), None, targets={"GPT-3 175B": 0.427})
    expected = (10 / 0.573) ** 10
    assert table.sanity["predicted_flops"] == pytest.approx(expected)
    assert not table.sanity["ok"]
    assert table.title.startswith("SANITY FAIL")
    assert f"allowed ×{SANITY_FACTOR:g}" in table.title
    assert table.sanity["verdict"].startswith("SANITY FAIL")
    assert "÷1.2e+11" in table.sanity["verdict"]
    assert table.to_markdown().startswith("**SANITY FAIL")


def test_sanity_names_every_form():
    real = ref.GPT3_175B_TRAIN_FLOPS
    fit = _known_fit(1e19, _two_step_reaching(0.427, 2 * real))
    verdict = extrapolation_table(fit, None, targets={"GPT-3 175B": 0.427}).sanity["verdict"]
    assert "(other forms: two-step form ×2)" in verdict


def test_default_bpb_budgets_stop_where_the_evidence_stops():
    """Data 2e12–5e13: powers of ten from 1e13, then 5e13·10^2 = 5e15, where the list stops."""
    assert MAX_DECADES == 2
    assert default_budgets(2e12, 5e13) == pytest.approx((1e13, 1e14, 1e15, 5e15))
    far = default_budgets(2e12, 5e13, far=True)
    assert far[:4] == pytest.approx((1e13, 1e14, 1e15, 5e15))
    assert far[4:] == pytest.approx(tuple(10.0**e for e in range(16, 25)))


def _chance_fit():
    rng = np.random.default_rng(5)
    c = np.array([2e12, 4.5e12, 1e13, 2.2e13, 5e13])
    bpb = BpbLaw(1.2, 40.0, 0.12).bpb(c) + rng.normal(0, 0.003, 5)
    return fit_series(c, rng.normal(0, 0.004, 5), bpb, core_se=0.004, n_boot=50)


def test_bpb_rows_past_the_limit_are_left_out_unless_far():
    fit = _chance_fit()
    kw = dict(chance=fit.chance, budgets=(1e14, 1e16, 1e17))
    table = extrapolation_table(None, fit.bpb_fit, **kw)
    assert [r["budget"] for r in table.rows] == ["1e+14 FLOPs"]
    assert table.fit["rows_left_out"] == 2
    assert any("2 row(s) left out" in n and "--far" in n for n in table.notes)
    far = extrapolation_table(None, fit.bpb_fit, far=True, **kw)
    assert [r["speculative"] for r in far.rows] == [False, True, True]
    assert far.rows[1]["decades_past_data"] == pytest.approx(np.log10(1e16 / 5e13))
    assert far.display_rows()[1][far.columns.index("decades_past_data")] == "+2.3 dec, speculative"
    default = extrapolation_table(None, fit.bpb_fit, chance=fit.chance)
    assert [r["budget"] for r in default.rows][-1] == "5e+15 FLOPs"
    assert max(r["decades_past_data"] for r in default.rows) == pytest.approx(MAX_DECADES)


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


def test_cli_help_states_the_limits(capsys):
    from miniseries.cli import extrapolate

    text = extrapolate.HELP
    assert f"more than {MAX_DECADES:g} decades" in text
    assert (
        f"more than {FORM_DISAGREEMENT:g}x" in text and f"by more than\n{SANITY_FACTOR:g}x" in text
    )


def _gpu_like_csv(path, seed=1):
    """nanochat's CORE law over 1e18–1.2e19 FLOPs (9 runs, CORE noise 0.003), bpb a power law:
    the shape of a GPU miniseries. Its two-step form puts GPT-3 175B ~100× below the power
    form's FLOPs (for every seed tried), so the table must show both."""
    rng = np.random.default_rng(seed)
    c = np.geomspace(1e18, 1.2e19, 9)
    core = NANOCHAT.model.core(c) + rng.normal(0, 0.003, 9)
    bpb = 6.4 * c**-0.0474 + rng.normal(0, 0.002, 9)
    lines = ["flops,core,bpb"] + [f"{a:.4g},{b:.4f},{d:.4f}" for a, b, d in zip(c, core, bpb)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_from_csv_marks_distance_and_shows_form_disagreement(tmp_path, capsys):
    path = _gpu_like_csv(tmp_path / "series.csv")
    argv = ("extrapolate", "--from-csv", str(path), "--n-boot", "30")
    doc = json.loads(_run(capsys, *argv, "--json"))
    gpt3 = next(r for r in doc["rows"] if r["target"] == "GPT-3 175B")
    assert gpt3["forms_disagree"] and gpt3["speculative"]
    assert gpt3["flops_power"] / gpt3["flops_two-step"] > 10
    assert gpt3["flops_lo"] <= min(gpt3["flops_power"], gpt3["flops_two-step"])
    assert gpt3["flops_hi"] >= max(gpt3["flops_power"], gpt3["flops_two-step"])
    assert gpt3["decades_past_data"] == pytest.approx(np.log10(gpt3["flops"] / 1.2e19))
    assert set(doc["fit"]["forward_rmse"]) == {"power", "two-step"}
    text = _run(capsys, *argv)
    assert "past data" in text and "dec" in text and "spans both forms" in text
    assert "(power)" in text and "(two-step)" in text
