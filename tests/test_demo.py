"""The demo end to end: a real small one in `make test`, the real one marked slow."""

import math
import os
import re
import subprocess
import sys

import pytest

from miniseries.jobs.demo import DemoConfig, run_demo
from miniseries.store.db import open_store
from miniseries.study.results import measured_optimum
from miniseries.study.stored_fits import runs_for_fit

TINY = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 8}
FIT_BUDGETS, HELD_OUT = (4e10, 5.7e10, 8e10), 1.6e11  # held out: 2x the largest fitted budget


def test_small_demo_end_to_end(markov_data, tmp_path):
    """Every stage on a corpus where tiny models find an isoFLOP optimum within a few hundred
    steps (see `markov_documents`), so the held-out prediction really is made and judged."""
    tokens, tok = markov_data
    cfg = DemoConfig(
        project=str(tmp_path / "demo"),
        fit_budgets=FIT_BUDGETS,
        heldout_budget=HELD_OUT,
        window=4,
        series_depths=(1, 2, 3),
        core_cap=None,
        sweep_evals=2,
        series_evals=3,
        n_bootstrap=50,
        min_steps=10,
        data=str(tokens),
        tokenizer=str(tok),
        overrides=TINY,
        progress=False,
    )
    lines = []
    result = run_demo(cfg, log=lines.append)
    with open_store(cfg.project) as store:
        iso = store.list_runs(kind="isoflop", status="done")
        series = store.list_runs(kind="series", status="done")
        assert {r["budget"] for r in iso} == {*FIT_BUDGETS, HELD_OUT}
        assert len(series) == 3
        # the series follows the ratio rule (study/series_rule.py, tested on its own): each depth at
        # the ratio it names, to within one optimizer step of tokens, and the headline says which
        trend = result["laws"].isoflop.ratio_trend_interval
        for r in series:
            want = result["series_ratios"][r["depth"]] * r["params_total"]
            assert abs(r["tokens"] - want) <= r["tokens"] / r["steps"]
        per_depth = math.isfinite(trend.lo + trend.hi) and not trend.lo <= 0 <= trend.hi
        assert (len(set(result["series_ratios"].values())) > 1) == per_depth
        for r in iso:  # every run spent its budget to within one optimizer step
            assert abs(r["flops"] - r["budget"]) <= r["flops"] / r["steps"]
        assert store.latest_fit("isoflop_laws") is not None
        [stored] = [p for p in store.predictions() if p["run_id"] == f"budget:{HELD_OUT:g}"]
    report = result["report"]
    assert report.html_path.exists() and report.md_path.exists()
    text = lines[-1]
    assert "report:" in text and "time:" in text and "miniseries trained at:" in text
    assert f"held-out budget {HELD_OUT:.3g}: predicted optimal bpb" in text
    assert "judged against the 90% PI of the measured vertex" in text
    assert "before the first judged run started" in text and ": blind" in text
    check_held_out(result, stored, iso, HELD_OUT)
    check_windows(lines, iso, cfg)

    # a rerun reuses every run and never touches the stored prediction (nor adds one)
    again = run_demo(cfg, log=lines.append)
    with open_store(cfg.project) as store:
        assert store.predictions(f"budget:{HELD_OUT:g}") == [stored]
    assert again["prediction"] == result["prediction"] and "stored earlier" in "".join(lines)


def check_windows(lines: list[str], iso: list[dict], cfg) -> None:
    """Each profile sampled the rule's window: ``cfg.window`` consecutive depths, and the
    held-out one the depths its stored prediction named before training."""
    depths = {}
    for r in iso:
        depths.setdefault(r["budget"], set()).add(r["depth"])
    for budget, ds in depths.items():
        assert len(ds) == cfg.window and max(ds) - min(ds) == cfg.window - 1, (budget, ds)
    assert any(f"isoFLOP budget {FIT_BUDGETS[2]:.3g}: depths" in x and "isoFLOP fit of the "
               "smaller budgets" in x for x in lines)  # fmt: skip


def check_held_out(result: dict, stored: dict, iso: list[dict], budget: float) -> None:
    """The held-out prediction exists, came from the smaller budgets only, was stored before the
    first held-out run started, and extrapolates: its loss is nearer the measured optimum than the
    largest fitted budget's own optimum is (the "nothing changes" forecast), and its N* is within
    1.5x of the measured one."""
    pred, measured = result["prediction"], result["measured"]
    assert pred is not None and measured is not None
    assert stored["predicted"] == pred.to_dict()
    assert max(pred.fit_budgets) < budget
    held = [r for r in iso if r["budget"] == budget]
    assert held and stored["created_at"] < min(r["started_at"] for r in held)
    assert sorted({r["depth"] for r in held}) == pred.plan["depths"]  # the window it named
    assert set(pred.fit_runs) == {r["run_id"] for r in iso if r["budget"] < budget}
    # the prediction interval of a measurement is wider than the law's confidence interval
    assert pred.outcome.kind == "prediction" and pred.loss.kind == "confidence"
    assert pred.outcome.hi - pred.outcome.lo > pred.loss.hi - pred.loss.lo
    runs = runs_for_fit(iso, "total")
    largest = measured_optimum(runs, max(pred.fit_budgets), "total")
    assert abs(pred.loss.point - measured["loss"]) < abs(largest["loss"] - measured["loss"])
    assert abs(math.log(pred.n_opt.point / measured["n_opt"])) < math.log(1.5)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_real_demo(tmp_path):
    """The full CPU demo (~10 minutes of training, plus the one-time data build): curves nested,
    the held-out prediction made before training and within 1% of the measured optimum."""
    project = tmp_path / "d"
    out = subprocess.run(
        [sys.executable, "-m", "miniseries", "demo", "--project", str(project), "--quiet"],
        capture_output=True,
        text=True,
        env=dict(os.environ, MINISERIES_CACHE=os.path.expanduser("~/.cache/miniseries")),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "curves nested" in out.stdout
    match = re.search(r"held-out budget ([\d.e+]+): predicted optimal bpb [\d.]+, measured "
                      r"[\d.]+ \(([-+][\d.]+)%\)", out.stdout)  # fmt: skip
    assert match, out.stdout[-2000:]
    assert abs(float(match.group(2))) < 1.0
    budget = float(match.group(1))
    with open_store(project) as store:
        [stored] = [p for p in store.predictions() if p["run_id"] == f"budget:{budget:g}"]
        held = [r for r in store.list_runs(kind="isoflop") if r["budget"] == budget]
    assert stored["created_at"] < min(r["started_at"] for r in held)
