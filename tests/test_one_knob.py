"""The one knob: `run --flops C` picks the depth the stored law predicts, says what it expects,
trains, and records prediction vs outcome; without a law it says it uses the preset's ratio."""

import argparse
import math
import re

import pytest
from synthetic import CHINCHILLA, synthetic_runs

from miniseries.accounting import param_counts
from miniseries.cli import run as run_cli
from miniseries.cli import series as series_cli
from miniseries.config import get_preset
from miniseries.laws import fit_laws
from miniseries.plan import plan_for_flops
from miniseries.store.db import open_store
from miniseries.study.stored_fits import FIT_KIND, fit_record

TINY = ["--vocab-size", "512", "--seq-len", "64", "--batch-tokens", "512"]
TINY += ["--device-batch-size", "4", "--val-tokens", "2048", "--evals", "2", "--threads", "1"]
PRESET = get_preset("cpu").with_overrides(
    vocab_size=512, seq_len=64, batch_tokens=512, device_batch_size=4
)
# Chinchilla's law with A x 4 puts N*(1e10) near 1.9e5 params: a few layers of the tiny family.
LAW = dict(CHINCHILLA, A=4 * CHINCHILLA["A"])


def cli(module, argv: list[str]) -> int:
    sub = argparse.ArgumentParser().add_subparsers()
    module.add_parser(sub)
    name = module.add_parser.__module__.rsplit(".", 1)[-1]
    args = sub.choices[name].parse_args(argv)
    return args.run(args)


def data_args(tiny_data, project) -> list[str]:
    tokens, tok = tiny_data
    return ["--data", str(tokens), "--tokenizer", str(tok), "--project", str(project), *TINY]


@pytest.fixture
def fitted_project(tmp_path):
    runs = synthetic_runs([1e9, 1e10, 1e11], per_budget=7, law=LAW)
    laws = fit_laws(runs, "total", n_bootstrap=100, seed=0)
    with open_store(tmp_path / "p") as store:
        store.add_fit(FIT_KIND, "total", fit_record(laws, runs, 100, 0))
    return tmp_path / "p", runs


def test_run_picks_the_predicted_depth_and_records_prediction_vs_outcome(
    tiny_data, fitted_project, capsys
):
    project, _ = fitted_project
    budget = 1e10
    # the planted law's optimum in closed form (Hoffmann et al. 2022, eq. 4; C = 6 N D)
    al, be = LAW["alpha"], LAW["beta"]
    n_true = (al * LAW["A"] / (be * LAW["B"])) ** (1 / (al + be)) * (budget / 6) ** (be / (al + be))
    d_true = budget / (6 * n_true)
    loss_true = LAW["E"] + LAW["A"] / n_true**al + LAW["B"] / d_true**be
    gaps = sorted(
        (abs(math.log(param_counts(PRESET.model_config(d)).total / n_true)), d)
        for d in range(1, 20)
    )
    depth = gaps[0][1]
    # a fit error of a few % in N* cannot move the choice: the runner-up is > 10% farther
    assert gaps[1][0] - gaps[0][0] > math.log(1.1) and depth > 1
    assert cli(run_cli, ["--flops", "1e10", "--quiet", *data_args(tiny_data, project)]) == 0
    out = capsys.readouterr().out
    assert "isoFLOP fit #1" in out and f"depth {depth}," in out
    shown = float(re.search(r"law at N\*: ([\d.]+) \[[\d.]+–[\d.]+\] \(90% CI\)", out).group(1))
    centre = re.search(r"centred on the (\w+) route", out).group(1)
    assert shown == pytest.approx(loss_true, rel=0.01)
    run_pi = re.search(r"this run ([\d.]+) \[([\d.]+)–([\d.]+)\] \(90% PI\)", out)
    run_point, run_lo, run_hi = map(float, run_pi.groups())
    assert run_lo < run_point < run_hi
    if centre == "isoflop":  # the depth's penalty is >= 0 on the law it is read off
        assert run_point >= shown
    assert "outcome: val bpb" in out
    with open_store(project, create=False) as store:
        [pred] = store.predictions()
        row = store.get_run(pred["run_id"])
    p = pred["predicted"]
    assert p["plan"]["depth"] == depth and p["method"] == "isoflop" and p["fit_id"] == 1
    assert p["loss"]["point"] == pytest.approx(shown, abs=5e-5)
    assert p["n_opt"]["point"] == pytest.approx(n_true, rel=0.1)
    assert p["loss"]["lo"] < p["loss"]["point"] < p["loss"]["hi"]
    assert p["loss"]["kind"] == "confidence" and p["loss"]["level"] == 0.9
    assert p["outcome"]["kind"] == "prediction"
    assert p["outcome"]["point"] == pytest.approx(run_point, abs=5e-5)
    assert row["kind"] == "one_knob" and row["status"] == "done" and row["depth"] == depth
    assert row["budget"] == budget and row["val_bpb"] > 0
    assert abs(row["flops"] - budget) <= 0.5 * row["flops"] / row["steps"]


def test_run_without_a_fit_uses_the_preset_ratio(tiny_data, tmp_path, capsys):
    argv = ["--flops", "1e11", "--dry-run", *data_args(tiny_data, tmp_path / "p")]
    assert cli(run_cli, argv) == 0
    out = capsys.readouterr().out
    assert "no isoFLOP fit in the store: using the cpu preset's ratio 8 tokens per N (total" in out
    assert f"depth {plan_for_flops(1e11, PRESET).depth}," in out
    assert "expected val bpb" not in out


def test_series_takes_its_ratio_from_the_fit(tiny_data, fitted_project, capsys):
    project, runs = fitted_project
    with open_store(project, create=False) as store:  # the ratio the stored fit holds
        ratio = store.latest_fit(FIT_KIND)["fit"]["isoflop"]["ratio"]
    argv = ["--depths", "1-2", "--dry-run", *data_args(tiny_data, project)]
    assert cli(series_cli, argv) == 0
    out = capsys.readouterr().out
    assert f"ratio {ratio:.3g} tokens per N (total params): D*/N* of isoFLOP fit #1" in out


def test_series_without_a_fit_says_it_uses_the_preset(tiny_data, tmp_path, capsys):
    argv = ["--depths", "1-2", "--dry-run", *data_args(tiny_data, tmp_path / "p")]
    assert cli(series_cli, argv) == 0
    assert "the cpu preset's default (no isoFLOP fit in the store)" in capsys.readouterr().out


def test_noise_trains_one_run_per_seed_and_floors_the_prediction_interval(
    tiny_data, tmp_path, capsys, fitted_project
):
    from miniseries.cli import noise as noise_cli
    from miniseries.study.seed_noise import seed_noise
    from miniseries.study.stored_fits import predict_at

    project = tmp_path / "n"
    argv = ["--flops", "3e8", "--depth", "1", "--seeds", "2", "--quiet", "--evals", "1"]
    assert cli(noise_cli, [*argv, *data_args(tiny_data, project)]) == 0
    with open_store(project, create=False) as store:
        rows = store.list_runs(kind="noise", status="done")
        rec = store.latest_fit("seed_noise")["fit"]
    assert len(rows) == 2 and {r["depth"] for r in rows} == {1}
    assert len({r["run_id"] for r in rows}) == 2  # the seed is part of a run's identity
    values = [r["val_bpb"] for r in rows]
    sd = abs(values[0] - values[1]) / math.sqrt(2)  # the sample sd of two values, by hand
    assert rec["sd"] == pytest.approx(sd, rel=1e-9) and rec["dof"] == 1
    assert seed_noise(project) == pytest.approx((sd, 1))
    # a measured seed noise is pooled with the sweep's own scatter by dof, and the parts say so
    _, runs = fitted_project
    plain = predict_at(runs, 3e11, measured_params=[2e5], n_bootstrap=50)
    floored = predict_at(runs, 3e11, measured_params=[2e5], n_bootstrap=50, noise=(0.2, 2))
    assert floored.outcome_parts["noise_from"] == "runs around their budgets' profiles and seeds"
    assert plain.outcome_parts["noise_from"] == "runs around their budgets' profiles"
    s1, d1 = plain.outcome_parts["run_noise"], plain.outcome_parts["noise_dof"]
    pooled = math.sqrt((d1 * s1**2 + 2 * 0.2**2) / (d1 + 2))  # variances pooled by dof, by hand
    assert floored.outcome_parts["run_noise"] == pytest.approx(pooled)
    assert floored.outcome_parts["noise_dof"] == d1 + 2
    assert min(s1, 0.2) < floored.outcome_parts["run_noise"] < max(s1, 0.2)
