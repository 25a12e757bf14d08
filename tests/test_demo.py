"""The demo end to end: a real small one in `make test`, the real one marked slow."""

import json
import os
import subprocess
import sys

import pytest

from miniseries.demo import DemoConfig, run_demo
from miniseries.store import open_store

TINY = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 8}


def test_small_demo_end_to_end(tiny_data, tmp_path):
    tokens, tok = tiny_data
    cfg = DemoConfig(
        project=str(tmp_path / "demo"),
        fit_budgets=(1e9, 2e9, 4e9),
        heldout_budget=8e9,
        fit_depths=((1, 2, 3, 4),) * 3,
        heldout_depths=(1, 2, 3, 4),
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
        assert {r["budget"] for r in iso} == {1e9, 2e9, 4e9, 8e9}
        assert len(series) == 3
        for r in iso:  # every run spent its budget to within one optimizer step
            assert abs(r["flops"] - r["budget"]) <= r["flops"] / r["steps"]
        assert store.latest_fit("isoflop_laws") is not None
        heldout = [p for p in store.predictions() if p["run_id"] == "budget:8e+09"]
    report = result["report"]
    assert report.html_path.exists() and report.md_path.exists()
    text = lines[-1]
    assert "report:" in text and "time:" in text
    if result["prediction"]:  # made before the held-out budget was trained, and stored
        assert heldout and heldout[0]["predicted"]["fit_budgets"]
        assert max(heldout[0]["predicted"]["fit_budgets"]) < 8e9


@pytest.mark.slow
def test_real_demo(tmp_path):
    """The full CPU demo (~10 minutes): curves nested, held-out bpb within 1% of prediction."""
    out = subprocess.run(
        [sys.executable, "-m", "miniseries", "demo", "--project", str(tmp_path / "d"), "--quiet"],
        capture_output=True,
        text=True,
        env=dict(os.environ, MINISERIES_CACHE=os.path.expanduser("~/.cache/miniseries")),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "no crossings" in out.stdout or "nested" in out.stdout
    with open_store(tmp_path / "d") as store:
        pred = store.predictions()[0]["predicted"]
    assert json.dumps(pred)
