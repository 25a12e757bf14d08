"""Concurrency: two writers on one results store and a report generated while they write.

No row may be lost or seen half-written: a reader sees a run as 'done' only together with its
whole curve, every report made mid-way succeeds, and at the end every run is there exactly once.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from miniseries.report.project_report import write_report
from miniseries.store.db import open_store

WRITER = """
import sys
from miniseries.store.db import open_store
project, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = open_store(project)
for i in range(first, last):
    budget, depth = (3e11, 6e11, 1.2e12)[i % 3], 1 + (i // 3) % 5
    n = 2e4 * depth**2
    d = budget / (6 * n)
    loss = 1.5 + 40 / n**0.3 + 60 / d**0.3
    rid = f"r{i:05d}"
    with store.transaction():  # the row and its curve land together, as record_done does
        store.ensure_run(rid, kind="isoflop", budget=budget, depth=depth, preset="cpu",
                         d_model=16 * depth, params_total=int(n), params_kaplan=int(n),
                         params_matrices=int(n), tokens=int(d), flops=budget, steps=100,
                         ratio=d / n)
        store.add_curve(rid, [{"step": s, "tokens": s * 10, "flops": 1.0 * s,
                               "val_bpb": loss + 1 / s} for s in range(1, 41)])
        store.update_run(rid, status="done", val_bpb=loss, tokens=int(d), flops=budget)
"""


def writer(project: Path, first: int, last: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(project), str(first), str(last)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_consistent(project: Path) -> int:
    """Every 'done' run has its whole curve, read in one snapshot; returns the done count."""
    with open_store(project) as store, store.snapshot():
        done = store.list_runs(status="done")
        for r in done:
            assert len(store.curve(r["run_id"])) == 40, r["run_id"]
        assert not store.list_runs(status="pending")  # rows are never seen before their curves
    return len(done)


def test_two_writers_and_a_report_lose_nothing(tmp_path):
    project = tmp_path / "project"
    open_store(project).close()
    procs = [writer(project, 0, 60), writer(project, 30, 90)]  # runs 30-59 written by both
    seen, reports = [], 0
    while any(p.poll() is None for p in procs):
        seen.append(check_consistent(project))
        report = write_report(project, tmp_path / f"report{reports % 2}", n_bootstrap=0)
        assert report.md_path.exists() and report.html_path.exists()
        reports += 1
    for p in procs:
        assert p.wait() == 0, p.stderr.read()[-2000:]
    seen.append(check_consistent(project))
    assert seen == sorted(seen) and seen[-1] == 90  # never fewer rows than before; all 90 there
    with open_store(project) as store:
        ids = [r["run_id"] for r in store.list_runs()]
        assert sorted(ids) == [f"r{i:05d}" for i in range(90)]  # each exactly once
        assert store.db.execute("SELECT COUNT(*) FROM curves").fetchone()[0] == 90 * 40
    assert reports >= 1
    final = write_report(project, tmp_path / "final", n_bootstrap=0)
    assert "· 90 runs (90 done) ·" in final.md_path.read_text()  # the report counts every run


# -- real sweeps --------------------------------------------------------------------------------

SWEEP = """
import sys, json
from miniseries.study.runspec import RunSpec
from miniseries.study.sweep import execute
data, tok, project, depths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
tiny = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 4,
        "val_tokens": 1024, "threads": 1}
specs = [RunSpec(depth=int(d), steps=6, data=data, tokenizer=tok, overrides=tiny, evals=2,
                 kind="isoflop", budget=1e9) for d in depths.split(",")]
rows = execute(specs, project, workers=1, progress=False, log=lambda *a: None)
print(json.dumps([r["status"] for r in rows]))
"""


def test_two_sweeps_and_a_report_while_they_run(tiny_data, tmp_path):
    project = tmp_path / "project"
    tokens, tok = tiny_data
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]), OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SWEEP, str(tokens), str(tok), str(project), depths],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for depths in ("1,2,3", "3,2,4")  # d2 and d3 asked for by both sweeps
    ]
    reports = 0
    while any(p.poll() is None for p in procs):
        if (project / "miniseries.db").exists():
            write_report(project, tmp_path / "report", n_bootstrap=0)
            reports += 1
        time.sleep(0.5)
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err[-3000:]
        assert set(json.loads(out.strip().splitlines()[-1])) == {"done"}
    with open_store(project) as store:
        runs = store.list_runs()
        assert sorted(r["depth"] for r in runs) == [1, 2, 3, 4]  # one row per distinct run
        for r in runs:
            assert r["status"] == "done" and r["val_bpb"] is not None
            curve = store.curve(r["run_id"])
            assert sum(c["val_bpb"] is not None for c in curve) == 2
            log = Path(r["run_dir"]) / "log.jsonl"
            steps = [json.loads(x)["step"] for x in log.read_text().splitlines()]
            train_steps = [s for s, x in zip(steps, log.read_text().splitlines()) if "loss" in x]
            assert train_steps == list(range(1, 7))  # trained once: no step twice
    assert reports >= 1
    write_report(project, tmp_path / "final", n_bootstrap=0)
