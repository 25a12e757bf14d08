"""The trainer: it learns, it resumes bit for bit after SIGKILL, DDP equals grad accumulation,
and a NaN stops it cleanly."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import miniseries.train.trainer as train_mod
from miniseries.cli import main
from miniseries.train.run_folder import CHECKPOINT, CONFIG, LOG, SUMMARY
from miniseries.train.trainer import TrainConfig, TrainingDiverged, train

TINY = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 4}


def config(tiny_data, out, **kw) -> TrainConfig:
    tokens, tok = tiny_data
    base = dict(
        depth=2,
        out=str(out),
        data=str(tokens),
        tokenizer=str(tok),
        steps=30,
        evals=3,
        overrides=dict(TINY, val_tokens=4096),
    )
    base.update(kw)
    return TrainConfig(**base)


def log_lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / LOG).read_text().splitlines()]


def nan_loss_at(step: int, train_step=train_mod.Trainer.train_step):
    """A ``Trainer.train_step`` whose forward pass gives a NaN loss at ``step`` (what a too-high
    learning rate does), so the trainer's own divergence check has to catch it."""

    def poisoned(self):
        if self.step != step:
            return train_step(self)
        forward = self.forward
        self.forward = lambda x, y: forward(x, y) * float("nan")
        try:
            return train_step(self)
        finally:
            self.forward = forward

    return poisoned


def test_short_run_learns_and_writes_everything(tiny_data, tmp_path):
    summary = train(config(tiny_data, tmp_path / "r"), progress=False)
    out = tmp_path / "r"
    for name in (CONFIG, LOG, CHECKPOINT, SUMMARY):
        assert (out / name).exists(), name
    lines = log_lines(out)
    evals = [x["val_bpb"] for x in lines if "val_bpb" in x]
    assert len(evals) == 3  # steps 10, 20 and the final one (none at step 0)
    assert evals[-1] < evals[0] - 0.15  # still learning between step 10 and step 30
    steps = [x["step"] for x in lines if "train_loss" in x]
    assert steps == list(range(1, 31))
    assert (
        summary["tokens"] == 30 * 512
        and summary["flops"] == summary["tokens"] * summary["flops_per_token"]
    )
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["step"] == 30


def _train_argv(tiny_data, out, steps):
    tokens, tok = tiny_data
    return [
        "train",
        "--depth",
        "2",
        "--steps",
        str(steps),
        "--out",
        str(out),
        "--data",
        str(tokens),
        "--tokenizer",
        str(tok),
        "--vocab-size",
        "512",
        "--seq-len",
        "64",
        "--batch-tokens",
        "512",
        "--device-batch-size",
        "4",
        "--evals",
        "6",
        "--quiet",
        "--val-tokens",
        "4096",
    ]


def test_sigkill_then_resume_equals_uninterrupted(tiny_data, tmp_path):
    steps = 60
    ref = tmp_path / "ref"
    assert main(_train_argv(tiny_data, ref, steps)) == 0
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "miniseries", *_train_argv(tiny_data, out, steps)], env=env
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a checkpoint exists and training went past it
        if (out / CHECKPOINT).exists() and (out / LOG).exists():
            done = [x for x in log_lines(out) if "train_loss" in x]
            if done and done[-1]["step"] >= 25:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert 0 < state["step"] < steps  # really interrupted mid-way
    assert main(_train_argv(tiny_data, out, steps)) == 0  # same command resumes
    # from the checkpoint, not from scratch (which would end the same: training is deterministic)
    assert {"step": state["step"], "resumed_from": state["step"]} in log_lines(out)
    a = json.loads((ref / SUMMARY).read_text())
    b = json.loads((out / SUMMARY).read_text())
    assert b["val_bpb"] == a["val_bpb"]
    la = [x for x in log_lines(ref) if "train_loss" in x]
    lb = [x for x in log_lines(out) if "train_loss" in x]
    assert [x["train_loss"] for x in lb] == [x["train_loss"] for x in la]
    sa = torch.load(ref / CHECKPOINT, weights_only=True)["model"]
    sb = torch.load(out / CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_two_rank_gloo_equals_double_accumulation(tiny_data, tmp_path):
    """torchrun with 2 CPU processes (gloo) vs one process accumulating both ranks' rows, with
    DDP's bucketed, overlapped gradient averaging (the default) and with the reference path (one
    all_reduce per parameter): both equal the single process, step for step.

    Run twice per path: a rank that leaves without destroying its process group aborts at exit in
    about one run in five under load, so clean exits in a row make that regression hard to miss."""
    single = tmp_path / "single"
    assert main(_train_argv(tiny_data, single, 12)) == 0
    a = [x["train_loss"] for x in log_lines(single) if "train_loss" in x]
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node=2", "--standalone", "-m", "miniseries"]
    for attempt, sync in enumerate(("ddp", "ddp", "allreduce", "allreduce")):
        ddp = tmp_path / f"ddp{attempt}"
        res = subprocess.run(
            cmd + _train_argv(tiny_data, ddp, 12) + ["--grad-sync", sync],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
        assert res.returncode == 0, res.stderr[-3000:]
        assert "terminate called" not in res.stderr
        b = [x["train_loss"] for x in log_lines(ddp) if "train_loss" in x]
        assert len(a) == len(b) == 12
        for x, y in zip(a, b):
            assert abs(x - y) <= 1e-5 * abs(x)
        cfg = json.loads((ddp / "config.json").read_text())
        assert cfg["world_size"] == 2 and cfg["train"]["grad_sync"] == sync


def _gloo_threads() -> list[str]:
    names = (t.read_text().strip() for t in Path("/proc/self/task").glob("*/comm"))
    return [n for n in names if "gloo" in n]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_process_group_is_destroyed_on_every_exit_path(tiny_data, tmp_path, monkeypatch):
    """As torchrun would start it (RANK etc. in the environment, one rank here): the trainer
    creates the gloo group, and a clean end, a NaN stop and a SIGTERM all leave it destroyed, its
    threads stopped (threads still running at exit abort the process) and the SIGTERM handler
    given back."""
    import torch.distributed as dist

    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    seen = []
    real_step = train_mod.Trainer.train_step

    def spying_step(self):
        seen.append(dist.is_initialized() and dist.get_world_size())
        if self.cfg.seed == 7 and self.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # what torchrun sends when a peer fails
        return real_step(self)

    monkeypatch.setattr(train_mod.Trainer, "train_step", spying_step)
    handler = signal.getsignal(signal.SIGTERM)

    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    summary = train(config(tiny_data, tmp_path / "clean", steps=6, evals=1), progress=False)
    assert summary["world_size"] == 1 and seen and all(x == 1 for x in seen)
    assert not dist.is_initialized() and _gloo_threads() == []

    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setattr(train_mod.Trainer, "train_step", nan_loss_at(2, spying_step))
    with pytest.raises(TrainingDiverged):
        train(config(tiny_data, tmp_path / "nan", steps=6), progress=False)
    assert not dist.is_initialized() and _gloo_threads() == []
    monkeypatch.setattr(train_mod.Trainer, "train_step", spying_step)

    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    seen.clear()
    with pytest.raises(SystemExit) as stopped:
        train(config(tiny_data, tmp_path / "term", steps=30, seed=7), progress=False)
    assert stopped.value.code == 128 + signal.SIGTERM and len(seen) == 4  # stopped at step 3
    assert not dist.is_initialized() and _gloo_threads() == []
    assert signal.getsignal(signal.SIGTERM) is handler


FRESH_RANK = """
import json, sys
from pathlib import Path
from miniseries.train.trainer import TrainConfig, train
train(TrainConfig(**json.loads(sys.argv[1])), progress=False)
names = [t.read_text().strip() for t in Path("/proc/self/task").glob("*/comm")]
print(json.dumps([n for n in names if "gloo" in n]))
"""


def test_fresh_rank_stops_its_gloo_threads(tiny_data, tmp_path):
    """In a fresh interpreter (nothing of torch imported before the group exists, as under
    torchrun), the group's threads are gone when train() returns; the in-process test above cannot
    see this once another test has imported torch's compiler."""
    cfg = config(tiny_data, tmp_path / "fresh", steps=4, evals=1)
    env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1")
    res = subprocess.run(
        [sys.executable, "-c", FRESH_RANK, json.dumps(cfg.__dict__)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.splitlines()[-1]) == []


def test_planted_nan_stops_cleanly(tiny_data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "nan"
    cfg = config(tiny_data, out)
    monkeypatch.setattr(train_mod.Trainer, "train_step", nan_loss_at(15))
    with pytest.raises(TrainingDiverged, match="step 15"):
        train(cfg, progress=False)
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["step"] == 10  # the last good checkpoint survives
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (out / SUMMARY).exists()


def test_compiled_run_matches_eager_and_caches_its_kernels(tiny_data, tmp_path):
    """What the demo trains: `--compile` gives the eager run's numbers (fused kernels reorder
    float sums, nothing more), and its kernels land under the miniseries cache dir, where the next
    process finds them (a fresh process, as every sweep run is)."""
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env.update(MINISERIES_CACHE=str(cache), OMP_NUM_THREADS="1")
    runs = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        out = tmp_path / name
        res = subprocess.run(
            [sys.executable, "-m", "miniseries", *_train_argv(tiny_data, out, 12), *extra],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        runs[name] = log_lines(out)
    losses = {k: [x["train_loss"] for x in v if "train_loss" in x] for k, v in runs.items()}
    bpb = {k: [x["val_bpb"] for x in v if "val_bpb" in x] for k, v in runs.items()}
    assert len(losses["compiled"]) == 12 and losses["compiled"][-1] < losses["compiled"][0] - 0.3
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-3)
    assert bpb["compiled"] == pytest.approx(bpb["eager"], rel=1e-3)
    assert bpb["compiled"] != bpb["eager"]  # it really ran different (compiled) kernels
    assert any(p.is_file() for p in (cache / "compile").rglob("*"))
