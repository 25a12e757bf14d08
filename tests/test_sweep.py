"""Sweeps: the store gets the right FLOPs and tokens, kill -9 then rerun resumes without redoing
anything, two sweeps at once train nothing twice, failures are recorded (or stop the sweep), a
forked run equals a spawned one bit for bit, and runs start longest first."""

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from miniseries.config import CPU, get_preset
from miniseries.errors import UserError
from miniseries.plan import plan_isoflop
from miniseries.store.db import open_store
from miniseries.study.launch import Slot, choose_launcher
from miniseries.study.runspec import RunSpec, isoflop_specs
from miniseries.study.sweep import SweepFailed, curve_rows, execute, logged_flops
from miniseries.train.run_folder import write_train_config

TINY = {
    "vocab_size": 512,
    "seq_len": 64,
    "batch_tokens": 512,
    "device_batch_size": 4,
    "val_tokens": 2048,
}
BUDGETS = (5e9, 1.5e10)  # tiny runs: ~10 to ~400 steps
DEPTHS = (1, 2, 3)
DETERMINISTIC = ("depth", "budget", "steps", "tokens", "flops", "val_bpb", "status", "params_total")


def sweep_specs(tiny_data, budgets=BUDGETS, depths=DEPTHS):
    tokens, tok = tiny_data
    return isoflop_specs(
        budgets, depths, CPU, data=str(tokens), tokenizer=str(tok), overrides=TINY,
        min_steps=1, evals=3, log=lambda *a: None,
    )  # fmt: skip


def spec(tiny_data, depth=1, steps=12, **kw):
    tokens, tok = tiny_data
    overrides = dict(TINY) | kw.pop("overrides", {})
    return RunSpec(depth, steps, str(tokens), str(tok), overrides=overrides, evals=2, **kw)


SCRIPT = """
import json, sys
from miniseries.study.runspec import RunSpec
from miniseries.study.sweep import execute
specs = [RunSpec(**s) for s in json.load(open(sys.argv[1]))]
launcher = sys.argv[5] if len(sys.argv) > 5 else "auto"
rows = execute(specs, sys.argv[2], workers=int(sys.argv[3]), progress=False,
               threads=int(sys.argv[4]), launcher=launcher)
print(json.dumps([[r["run_id"], r["status"]] for r in rows]))
"""


def start_sweep(
    specs,
    project: Path,
    workers: int,
    tmp_path: Path,
    name: str,
    threads=1,
    launcher="auto",
    env=None,
) -> subprocess.Popen:
    """A sweep in its own process (so that it can be killed, and so that it has not run torch
    before: 'auto' forks there), with the Python API."""
    (tmp_path / "sweep_script.py").write_text(SCRIPT)
    (tmp_path / f"{name}.json").write_text(json.dumps([asdict(s) for s in specs]))
    argv = [sys.executable, str(tmp_path / "sweep_script.py"), str(tmp_path / f"{name}.json")]
    argv += [str(project), str(workers), str(threads), launcher]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def read_rows(project: Path) -> dict[str, dict]:
    with open_store(project, create=False) as store:
        return {r["run_id"]: r for r in store.list_runs()}


def curves(project: Path) -> dict[str, list]:
    with open_store(project, create=False) as store:
        return {rid: store.curve(rid) for rid in read_rows(project)}


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    """One uninterrupted 2 budgets x 3 depths sweep, shared by the tests that compare to it."""
    project = tmp_path_factory.mktemp("reference")
    rows = execute(sweep_specs(tiny_data), project, workers=2, progress=False, threads=1)
    return project, rows


def test_sweep_fills_store_with_exact_flops_and_tokens(tiny_data, reference):
    project, rows = reference
    preset = get_preset("cpu").with_overrides(**TINY)
    assert len(rows) == 6 and all(r["status"] == "done" for r in rows)
    assert {(r["budget"], r["depth"]) for r in rows} == {(c, d) for c in BUDGETS for d in DEPTHS}
    for r in rows:
        plan = plan_isoflop(r["depth"], r["budget"], preset)
        fpt = plan.flops_per_token
        assert r["kind"] == "isoflop" and r["steps"] == plan.steps
        assert r["tokens"] == r["steps"] * 512
        assert r["flops"] == fpt * r["tokens"]
        assert abs(r["flops"] - r["budget"]) <= 0.5 * fpt * 512  # the nearest whole step
        assert r["train_s"] > 0 and r["wall_s"] >= r["train_s"] and r["val_bpb"] > 0
        with open_store(project, create=False) as store:
            curve = store.curve(r["run_id"])
        vals = [c for c in curve if c["val_bpb"] is not None]
        assert vals[0]["step"] == -(-r["steps"] // 3) and vals[-1]["step"] == r["steps"]  # evals=3
        assert vals[-1]["val_bpb"] == r["val_bpb"] and vals[-1]["flops"] == r["flops"]
        losses = [c["train_loss"] for c in curve if c["train_loss"] is not None]
        assert losses[-1] < losses[0] - 0.5  # it trained
        stride = -(-r["steps"] // 200)  # train loss thinned to ~200 points, the last one kept
        kept = {s for s in range(1, r["steps"] + 1) if s % stride == 0 or s == r["steps"]}
        assert {c["step"] for c in curve if c["train_loss"] is not None} == kept
    stats = [json.loads(p.read_text()) for p in (project / "sweeps").glob("*.json")]
    assert any(s["trained"] == 6 and 0 <= s["overhead"] < 1 for s in stats)


def test_rerun_of_finished_sweep_trains_nothing(tiny_data, reference, capsys):
    project, rows = reference
    again = execute(sweep_specs(tiny_data), project, workers=2, progress=False, threads=1)
    assert again == rows  # same rows, same timestamps
    assert "6 already done" in capsys.readouterr().out


def test_fit_project_saves_fit_in_store(reference):
    import argparse

    from miniseries.cli import fit

    project, _ = reference
    sub = argparse.ArgumentParser().add_subparsers()
    fit.add_parser(sub)
    args = sub.choices["fit"].parse_args(["--project", str(project), "--bootstrap", "20", "--json"])
    assert args.run(args) == 0
    with open_store(project, create=False) as store:
        saved = store.latest_fit("isoflop_laws")  # the kind `fit --project` saves under
    assert saved["convention"] == "total" and len(saved["fit"]["runs"]) == 6
    assert {r["budget"] for r in saved["fit"]["runs"]} == set(BUDGETS)


def _log_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "log.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (OSError, ValueError):
        return 0


def _done_ids(project: Path) -> set:
    try:
        db = sqlite3.connect(project / "miniseries.db", timeout=5)
        ids = {r[0] for r in db.execute("SELECT run_id FROM runs WHERE status = 'done'")}
        db.close()
        return ids
    except sqlite3.Error:
        return set()


def test_kill_minus_9_then_rerun_resumes_and_matches(tiny_data, reference, tmp_path):
    import torch

    ref_project, ref_rows = reference
    specs = sweep_specs(tiny_data)
    long = max(specs, key=lambda s: s.steps)  # d1 at the big budget
    first_ckpt = -(-long.steps // 3)  # evals=3: a checkpoint at each eval
    project = tmp_path / "p"
    proc = start_sweep(specs, project, 2, tmp_path, "kill")
    rd = project / "runs" / long.run_id
    deadline = time.time() + 180
    while not (_log_step(rd) >= first_ckpt + 5 and _done_ids(project)):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "the sweep never reached the long run"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the trainer died with the sweep: its lock (which it inherited) is free again shortly
    fd = os.open(rd / ".lock", os.O_RDWR)
    for _ in range(200):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(0.05)
    else:
        pytest.fail("the training process outlived the killed sweep")
    os.close(fd)
    assert not (rd / "summary.json").exists()
    ckpt_step = torch.load(rd / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < ckpt_step < long.steps
    before = read_rows(project)
    finished = {k: v for k, v in before.items() if v["status"] == "done"}
    assert finished and long.run_id not in finished
    kept = [  # up to the checkpoint, but its eval: the resumed run redoes that
        ln
        for ln in (rd / "log.jsonl").read_text().splitlines()
        if (step := json.loads(ln)["step"]) < ckpt_step
        or (step == ckpt_step and "val_bpb" not in ln)
    ]

    execute(specs, project, workers=2, progress=False, threads=1)

    after = read_rows(project)
    assert all(after[k] == v for k, v in finished.items())  # untouched, timestamps included
    attempts = [json.loads(x) for x in (rd / "attempts.jsonl").read_text().splitlines()]
    assert len(attempts) == 2 and attempts[1]["resumed"] and attempts[1]["log_step"] >= ckpt_step
    assert attempts[0]["launcher"] == "fork"  # a forked trainer, too, died with its sweep
    # the log up to the checkpoint is the first attempt's (timings included): continued, not redone
    log = (rd / "log.jsonl").read_text().splitlines()
    assert log[: len(kept)] == kept
    assert json.loads(log[len(kept)]) == {"step": ckpt_step, "resumed_from": ckpt_step}
    for rid in finished:  # finished runs were launched once
        lines = (project / "runs" / rid / "attempts.jsonl").read_text().splitlines()
        assert len(lines) == 1
    ref = {r["run_id"]: r for r in ref_rows}
    assert set(after) == set(ref)
    for rid, row in after.items():
        assert {k: row[k] for k in DETERMINISTIC} == {k: ref[rid][k] for k in DETERMINISTIC}
    assert curves(project) == curves(ref_project)


def test_two_sweeps_at_once_train_each_run_once(tiny_data, tmp_path):
    specs = [spec(tiny_data, d) for d in DEPTHS]
    project = tmp_path / "p"
    procs = [start_sweep(specs, project, 1, tmp_path, f"s{i}") for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        outs.append(json.loads(out.decode().strip().splitlines()[-1]))
    ids = sorted(s.run_id for s in specs)
    for out in outs:  # each sweep waited for the runs the other one held
        assert sorted(rid for rid, _ in out) == ids and all(st == "done" for _, st in out)
    rows = read_rows(project)
    assert sorted(rows) == ids and all(r["status"] == "done" for r in rows.values())
    for rid in ids:
        attempts = (project / "runs" / rid / "attempts.jsonl").read_text().splitlines()
        assert len(attempts) == 1, f"{rid} was trained {len(attempts)} times"


def test_failed_run_is_recorded_and_the_others_finish(tiny_data, tmp_path):
    good = [spec(tiny_data, 1, steps=6), spec(tiny_data, 2, steps=6)]
    bad = spec(tiny_data, 1, overrides={"batch_tokens": 100})  # not a multiple of seq_len
    rows = execute([good[0], bad, good[1]], tmp_path / "p", progress=False, threads=1)
    status = {r["run_id"]: r for r in rows}
    assert status[bad.run_id]["status"] == "failed"
    assert "must be a multiple of" in status[bad.run_id]["error"]
    assert all(status[s.run_id]["status"] == "done" for s in good)


def test_fail_fast_stops_the_sweep(tiny_data, tmp_path):
    bad = spec(tiny_data, 1, overrides={"batch_tokens": 100})
    later = spec(tiny_data, 2, steps=4)  # shorter: longest-first starts it after `bad`
    with pytest.raises(SweepFailed, match="fail-fast"):
        execute([bad, later], tmp_path / "p", fail_fast=True, progress=False, threads=1)
    rows = read_rows(tmp_path / "p")
    assert rows[bad.run_id]["status"] == "failed" and rows[later.run_id]["status"] == "pending"
    assert not (tmp_path / "p" / "runs" / later.run_id / "log.jsonl").exists()


def test_identity_ignores_labels_and_threads(tiny_data):
    a = spec(tiny_data, 2, kind="isoflop", study="x", budget=1e10)
    b = spec(tiny_data, 2, kind="series", overrides={"threads": 7})
    assert a.run_id == b.run_id
    assert spec(tiny_data, 2, seed=1).run_id != a.run_id
    assert spec(tiny_data, 2, lr_mult=2.0).run_id != a.run_id
    with pytest.raises(UserError, match="unknown preset override"):
        spec(tiny_data, 2, overrides={"bogus": 1})


def test_min_steps_skips_short_runs_with_a_note(tiny_data):
    notes = []
    tokens, tok = tiny_data
    preset = get_preset("cpu").with_overrides(**TINY)
    steps = {d: plan_isoflop(d, 5e9, preset).steps for d in DEPTHS}
    cut = steps[DEPTHS[-1]] + 1  # the deepest run falls short
    specs = isoflop_specs(
        [5e9], DEPTHS, CPU, data=str(tokens), tokenizer=str(tok), overrides=TINY,
        min_steps=cut, log=notes.append,
    )  # fmt: skip
    assert [s.depth for s in specs] == [d for d in DEPTHS if steps[d] >= cut]
    assert f"d{DEPTHS[-1]} ({steps[DEPTHS[-1]]})" in notes[0]
    assert f"fewer than {cut} steps" in notes[0]


def test_core_needs_a_built_bundle(tiny_data, tmp_path):
    with pytest.raises(UserError, match="core build-bundle"):
        execute([spec(tiny_data)], tmp_path / "p", core=5, progress=False)


def test_core_after_each_run_is_stored(tiny_data, tmp_path):
    from corpus_helpers import write_tiny_core_bundle

    bundle = write_tiny_core_bundle(tmp_path / "bundle")
    s = spec(tiny_data)
    [row] = execute([s], tmp_path / "p", core=4, core_bundle=str(bundle), progress=False)
    assert row["status"] == "done" and row["core"] is not None and row["core_label"] == "CORE-1"
    with open_store(tmp_path / "p", create=False) as store:
        [task_row] = store.core_tasks(s.run_id)
    assert task_row["task"] == "mc" and task_row["n_examples"] == 4


def test_slurm_executor_with_submitit_local(tiny_data, tmp_path):
    s = spec(tiny_data)
    [row] = execute([s], tmp_path / "p", executor="slurm", progress=False, threads=1)
    assert row["status"] == "done" and row["val_bpb"] > 0
    assert (tmp_path / "p" / "slurm").is_dir()


def _attempts(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "attempts.jsonl").read_text().splitlines()]


def test_runs_start_longest_first(reference):
    project, rows = reference
    starts = {r["run_id"]: _attempts(Path(r["run_dir"]))[0]["started_at"] for r in rows}
    started = sorted(starts, key=starts.get)
    preset = get_preset("cpu").with_overrides(**TINY)
    plans = {r["run_id"]: plan_isoflop(r["depth"], r["budget"], preset) for r in rows}
    cost = [plans[rid].steps * (5e-3 + plans[rid].flops_per_token * 512 / 30e9) for rid in started]
    assert cost == sorted(cost, reverse=True)
    assert rows[0]["budget"] < max(BUDGETS) and plans[started[0]].flops > 1e10  # not given order


def test_forked_run_equals_python_m_miniseries_train(tiny_data, tmp_path):
    """The same spec trained by a forked child of a sweep and by a fresh `python -m miniseries
    train`: bit-identical losses and val bpb. Two threads each, so the child really uses an
    OpenMP team (a parent that had run a torch op would make it hang); a bad run's error comes
    through the child's stderr. Passive OpenMP waits: spinning threads crawl on a busy machine."""
    good = spec(tiny_data, 2, steps=16, overrides={"threads": 2})
    bad = spec(tiny_data, 1, overrides={"batch_tokens": 100})  # not a multiple of seq_len
    project, env = tmp_path / "p", dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    proc = start_sweep([good, bad], project, 1, tmp_path, "fork", 2, "fork", env)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()
    status = dict(json.loads(out.decode().strip().splitlines()[-1]))
    assert status == {good.run_id: "done", bad.run_id: "failed"}
    rd = project / "runs" / good.run_id
    assert [a["launcher"] for a in _attempts(rd)] == ["fork"]
    assert "must be a multiple of" in read_rows(project)[bad.run_id]["error"]

    ref = tmp_path / "ref"
    config = write_train_config(tmp_path, good.train_fields(ref))
    cmd = [sys.executable, "-m", "miniseries", "train", "--config", str(config), "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = (json.loads((d / "summary.json").read_text()) for d in (ref, rd))
    assert b["val_bpb"] == a["val_bpb"] and b["steps"] == a["steps"] == 16
    la, lb = (list(map(json.loads, (d / "log.jsonl").read_text().splitlines())) for d in (ref, rd))
    assert [x.get("train_loss") for x in lb] == [x.get("train_loss") for x in la]
    assert [x.get("val_bpb") for x in lb] == [x.get("val_bpb") for x in la]
    assert "val bpb" in (rd / "train.stdout").read_text()  # the child's print went to its log


def test_launcher_choice(monkeypatch):
    from miniseries.study import launch

    monkeypatch.setattr(launch, "_native_at_preload", None)  # as if no sweep forked here yet
    cpu, gpu = [Slot(2)], [Slot(None, [0])]
    fresh = dict(torch_was_loaded=False, slurm=False, nproc=1)
    assert choose_launcher("auto", slots=cpu, **fresh) == "fork"
    assert choose_launcher("spawn", slots=cpu, **fresh) == "spawn"
    assert choose_launcher("auto", slots=gpu, **fresh) == "spawn"
    assert choose_launcher("auto", slots=cpu, **(fresh | {"nproc": 2})) == "spawn"
    assert choose_launcher("auto", slots=cpu, **(fresh | {"slurm": True})) == "spawn"
    used = fresh | {"torch_was_loaded": True}  # this process may have run torch ops already
    assert choose_launcher("auto", slots=cpu, **used) == "spawn"
    with pytest.raises(UserError, match="torch was imported before"):
        choose_launcher("fork", slots=cpu, **used)
    with pytest.raises(UserError, match="GPU"):
        choose_launcher("fork", slots=gpu, **fresh)
    with pytest.raises(UserError, match="auto, fork, spawn"):
        choose_launcher("thread", slots=cpu, **fresh)


def test_lr_width_exponent_is_identity_and_reaches_the_trainer(tiny_data, tmp_path):
    import argparse

    from miniseries.cli import train as train_cli

    default = spec(tiny_data, 2)
    planted = spec(tiny_data, 2, lr_width_exponent=0.0)
    assert "lr_width_exponent" not in default.identity()  # ids from before the field still hold
    assert planted.run_id != default.run_id and planted.identity()["lr_width_exponent"] == 0.0
    sub = argparse.ArgumentParser().add_subparsers()
    train_cli.add_parser(sub)
    for i, s in enumerate((default, planted)):
        assert s.train_config(tmp_path / "r", threads=1).lr_width_exponent == s.lr_width_exponent
        # and through a spawned worker's --config file
        config = write_train_config(tmp_path / str(i), s.train_fields(tmp_path / "r", threads=1))
        args = sub.choices["train"].parse_args(["--config", str(config)])
        assert train_cli.config_from_args(args) == s.train_config(tmp_path / "r", threads=1)


def test_train_config_goes_alone(tiny_data, tmp_path, capsys):
    """`miniseries train --config PATH` with a run flag besides is one line, exit 2."""
    from miniseries.cli import main

    config = write_train_config(tmp_path, spec(tiny_data, 1).train_fields(tmp_path / "r"))
    assert main(["train", "--config", str(config), "--steps", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--config" in err[0] and "--steps" in err[0]
    assert not (tmp_path / "r").exists()


def test_read_log_skips_resumed_from_records(tmp_path):
    recs = [
        {"step": 1, "train_loss": 6.0, "tokens": 512, "flops": 1e6},
        {"step": 2, "train_loss": 5.0, "tokens": 1024, "flops": 2e6},
        {"step": 2, "resumed_from": 2},
        {"step": 2, "val_bpb": 3.0, "tokens": 1024, "flops": 2e6},
        {"step": 2, "resumed_from": 2},
    ]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert curve_rows(tmp_path, 2) == [
        {"step": 1, "tokens": 512, "flops": 1e6, "train_loss": 6.0},
        {"step": 2, "tokens": 1024, "flops": 2e6, "train_loss": 5.0, "val_bpb": 3.0},
    ]
    assert logged_flops(tmp_path) == 2e6  # progress is not reset by the resume record


def test_fork_is_refused_once_torch_has_run_an_op():
    """After a torch op with 2 threads the OpenMP pool exists and a forked child would hang in
    its first parallel region: `fork_safe` notices the pool's thread, so runs are spawned."""
    code = (
        "import torch\n"
        "from miniseries.study.launch import fork_safe, preload\n"
        "assert not fork_safe()\n"  # preload() has not run
        "preload()\n"
        "assert fork_safe()\n"
        "torch.set_num_threads(2)\n"
        "(torch.randn(256, 256) @ torch.randn(256, 256)).sum()\n"
        "print(fork_safe())\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "False"


def test_nproc_2_trains_one_run_under_torchrun_like_one_process(tiny_data, tmp_path):
    """`--nproc K`: a run spawned under torchrun with 2 gloo ranks takes the same steps as one
    process accumulating both ranks' rows, and leaves both ranks cleanly."""
    s = spec(tiny_data, 2, steps=8)
    [one] = execute([s], tmp_path / "one", progress=False, threads=1)
    [two] = execute([s], tmp_path / "two", nproc=2, progress=False, threads=1)
    assert one["status"] == two["status"] == "done", two["error"]
    config = json.loads((Path(two["run_dir"]) / "config.json").read_text())
    assert config["world_size"] == 2
    a, b = (_train_losses(Path(r["run_dir"])) for r in (one, two))
    assert len(a) == len(b) == 8
    assert all(abs(x - y) <= 1e-5 * abs(x) for x, y in zip(a, b))


def _train_losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return [rec["train_loss"] for rec in map(json.loads, lines) if "train_loss" in rec]
