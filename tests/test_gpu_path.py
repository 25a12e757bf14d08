"""The GPU path, exercised on a CPU: the gpu preset's real shapes at depth 2 (its 32,768-token
vocab, 2,048-token rows, gradient accumulation) through the `train` entry point a GPU run uses;
bf16 autocast; two torchrun nodes on one machine (plain, a sweep run, the Slurm path through
submitit's local executor); tokens counted, not assumed; scripts/gpu_check.sh's CPU mode."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import miniseries.train.trainer as train_mod
from miniseries.accounting import flops_per_token, param_counts
from miniseries.cli import main
from miniseries.config import CPU, GPU
from miniseries.study.launch import free_port, torchrun_argv
from miniseries.train.run_folder import CHECKPOINT, LOG, SUMMARY
from miniseries.train.trainer import TrainConfig, Trainer, train

ROOT = Path(__file__).resolve().parents[1]
GPU_RUN = ["--preset", "gpu", "--depth", "2", "--batch-tokens", "4096", "--device-batch-size",
           "1", "--val-tokens", "4096", "--quiet"]  # fmt: skip
TINY = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 4}


def log_lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / LOG).read_text().splitlines()]


def losses(out: Path) -> list[float]:
    return [x["train_loss"] for x in log_lines(out) if "train_loss" in x]


def gpu_argv(data, out, steps: int) -> list[str]:
    tokens, tok = data
    return ["train", *GPU_RUN, "--steps", str(steps), "--evals", "2", "--out", str(out),
            "--data", str(tokens), "--tokenizer", str(tok)]  # fmt: skip


class Crash(Exception):
    pass


def test_gpu_preset_on_cpu_trains_resumes_exactly_and_is_accounted(gpu_vocab_data, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    whole = tmp_path / "whole"
    assert main(gpu_argv(gpu_vocab_data, whole, 4)) == 0
    s = json.loads((whole / SUMMARY).read_text())
    # d2 of the gpu preset by hand: width 64 x 2 = 128 = one head of 128; vocab 32,768
    d, v = 128, 32768
    assert s["params"]["embedding"] == s["params"]["unembedding"] == v * d
    assert s["params"]["matrices"] == 12 * 2 * d * d
    assert s["flops_per_token"] == 6 * (v * d + 12 * 2 * d * d) + 12 * 2 * d * 2048
    assert s["flops_per_token"] == flops_per_token(GPU.model_config(2))
    assert s["tokens"] == 4 * 4096 == s["loader"]["rows"] * 2048  # counted = delivered
    assert s["flops"] == s["tokens"] * s["flops_per_token"]
    cfg = json.loads((whole / "config.json").read_text())
    assert cfg["model"]["n_heads"] == 1 and cfg["model"]["d_model"] == d
    assert cfg["preset"]["dtype"] == "bfloat16" and cfg["plan"]["batch_tokens"] == 4096
    first, *_, last = losses(whole)
    assert first == pytest.approx(math.log(v), rel=0.05) and last < first - 0.3  # it learns
    state = torch.load(whole / CHECKPOINT, weights_only=True)
    lrs = {g["name"]: g["initial_lr"] for o in state["optimizers"] for g in o["param_groups"]}
    width = (d / 768) ** -0.5  # AdamW LRs scale as (d_model / 768)^-0.5; Muon's does not
    assert lrs["unembedding"] == pytest.approx(0.004 * width)
    assert lrs["embedding"] == pytest.approx(0.3 * width)
    assert lrs["matrix"] == pytest.approx(0.02)
    # a crash after the step-2 checkpoint, then the same command: resumes and ends identically
    out = tmp_path / "crashed"
    step = train_mod.Trainer.train_step

    def crash_at_4(self):
        if self.step == 3:
            raise Crash
        return step(self)

    monkeypatch.setattr(train_mod.Trainer, "train_step", crash_at_4)
    with pytest.raises(Crash):
        main(gpu_argv(gpu_vocab_data, out, 4))
    monkeypatch.setattr(train_mod.Trainer, "train_step", step)
    assert main(gpu_argv(gpu_vocab_data, out, 4)) == 0
    assert {"step": 2, "resumed_from": 2} in log_lines(out)
    assert losses(out) == losses(whole)
    b = torch.load(out / CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(state["model"][k], b[k]) for k in b)
    assert json.loads((out / SUMMARY).read_text())["tokens"] == s["tokens"]


def tiny_config(tiny_data, out, **kw) -> TrainConfig:
    tokens, tok = tiny_data
    ov = dict(TINY, val_tokens=4096) | kw.pop("overrides", {})
    kw = dict(steps=10, evals=2) | kw
    return TrainConfig(depth=2, out=str(out), data=str(tokens), tokenizer=str(tok), overrides=ov,
                       **kw)  # fmt: skip


def test_bf16_autocast_on_cpu_tracks_fp32_and_keeps_fp32_where_it_must(tiny_data, tmp_path):
    # stated before running: bf16 keeps 8 bits of mantissa (unit roundoff 2^-8 = 0.4%); every
    # step's loss within 2% (5 roundoffs) of the fp32 run's
    fp32 = train(tiny_config(tiny_data, tmp_path / "fp32"), progress=False)
    bf16 = train(tiny_config(tiny_data, tmp_path / "bf16", overrides={"dtype": "bfloat16"}),
                 progress=False)  # fmt: skip
    a, b = losses(tmp_path / "fp32"), losses(tmp_path / "bf16")
    assert len(a) == len(b) == 10 and a != b  # bf16 really ran
    assert all(abs(x - y) <= 0.02 * x for x, y in zip(a, b))
    assert abs(bf16["val_bpb"] - fp32["val_bpb"]) <= 0.02 * fp32["val_bpb"]
    state = torch.load(tmp_path / "bf16" / CHECKPOINT, weights_only=True)
    assert all(t.dtype == torch.float32 for t in state["model"].values())  # master weights
    for opt in state["optimizers"]:  # AdamW moments, Muon momentum
        for st in opt["state"].values():
            assert all(t.dtype == torch.float32 for t in st.values() if t.numel() > 1)
    # inside one step: matmuls in bf16, the residual stream, its norms and the loss in fp32
    t = Trainer(tiny_config(tiny_data, tmp_path / "probe", overrides={"dtype": "bfloat16"}),
                progress=False)  # fmt: skip
    assert t.optimizers[1].ns_dtype == torch.bfloat16  # Muon's Newton-Schulz as on a GPU
    seen = {}
    hooks = [
        t.model.lm_head.register_forward_hook(lambda m, i, o: seen.update(lm_head=o.dtype)),
        t.model.blocks[0].register_forward_hook(lambda m, i, o: seen.update(residual=o.dtype)),
        t.model.blocks[0].attn.register_forward_pre_hook(lambda m, i: seen.update(norm=i[0].dtype)),
    ]
    x, y = t.loader.next_batch()
    with t.autocast:
        loss = t.model(x, y)
    loss.backward()
    for h in hooks:
        h.remove()
    assert seen == {"lm_head": torch.bfloat16, "residual": torch.float32, "norm": torch.float32}
    assert loss.dtype == torch.float32
    assert all(p.grad.dtype == torch.float32 for p in t.model.parameters())


def test_tokens_recorded_are_the_tokens_delivered_for_any_batch(tiny_data, tmp_path):
    """192 tokens = 3 rows in one pass; 640 = 10 rows as 5 passes of 2 (the largest divisor of 10
    within the 4-row device batch); 512 = 8 rows as 2 passes of 4."""
    for batch, (rows, accum) in {192: (3, 1), 640: (2, 5), 512: (4, 2)}.items():
        out = tmp_path / f"b{batch}"
        cfg = tiny_config(tiny_data, out, steps=7, overrides={"batch_tokens": batch})
        t = Trainer(cfg, progress=False)
        assert (t.rows, t.accum) == (rows, accum)
        s = t.run()
        assert s["tokens"] == s["loader"]["rows"] * 64 == 7 * batch
        assert log_lines(out)[-1]["tokens"] == s["tokens"]


def _tiny_argv(tiny_data, out, steps=8) -> list[str]:
    tokens, tok = tiny_data
    return ["train", "--depth", "2", "--steps", str(steps), "--out", str(out), "--data",
            str(tokens), "--tokenizer", str(tok), "--vocab-size", "512", "--seq-len", "64",
            "--batch-tokens", "512", "--device-batch-size", "4", "--evals", "2", "--quiet",
            "--val-tokens", "4096"]  # fmt: skip


def _same_steps(single: Path, multi: Path, world: int):
    a, b = losses(single), losses(multi)
    assert len(a) == len(b) > 0
    assert all(abs(x - y) <= 1e-5 * abs(x) for x, y in zip(a, b))
    sa, sb = (json.loads((p / SUMMARY).read_text()) for p in (single, multi))
    assert sb["world_size"] == world and sb["tokens"] == sa["tokens"]  # counted over all ranks
    assert sb["tokens"] == sb["loader"]["rows"] * 64


def test_two_torchrun_nodes_on_one_machine_equal_one_process(tiny_data, tmp_path):
    """`torchrun --nnodes 2 --nproc-per-node 1` twice, as two hosts start it (c10d rendezvous on
    127.0.0.1): the same steps as one process accumulating both nodes' rows."""
    single = tmp_path / "single"
    assert main(_tiny_argv(tiny_data, single)) == 0
    multi = tmp_path / "multi"
    endpoint = f"127.0.0.1:{free_port()}"
    argv = torchrun_argv(_tiny_argv(tiny_data, multi), 1, 2, endpoint, "two-nodes")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # each node's stderr to a file: a pipe nobody reads while the other node is waited on fills
    # up, blocks that node, and with it the other node's rendezvous or exit barrier
    logs = [tmp_path / f"node{i}.stderr" for i in range(2)]
    procs = [subprocess.Popen(argv, env=env, stderr=log.open("w")) for log in logs]
    try:
        for p in procs:
            p.wait(timeout=240)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        err = log.read_text()
        assert p.returncode == 0, err[-3000:]
        assert "terminate called" not in err
    _same_steps(single, multi, 2)


def test_torchrun_argv_by_hand():
    cmd = ["train", "--config", "c.json"]
    assert torchrun_argv(cmd, 8) == [sys.executable, "-m", "torch.distributed.run",
                                     "--nproc_per_node=8", "--standalone", "-m", "miniseries",
                                     *cmd]  # fmt: skip
    assert torchrun_argv(cmd, 8, 4, "node0:29400", "job7")[3:9] == [
        "--nproc_per_node=8", "--nnodes=4", "--rdzv_backend=c10d", "--rdzv_endpoint=node0:29400",
        "--rdzv_id=job7", "-m",
    ]  # fmt: skip


@pytest.mark.parametrize("executor", ["local", "slurm"])
def test_sweep_run_on_two_nodes_equals_one_process(tiny_data, tmp_path, monkeypatch, executor):
    """A sweep run with --nodes 2: locally two torchrun processes on 127.0.0.1; through the Slurm
    path (submitit, its local executor here: one task per node) each task builds the same torchrun
    command on its node. Both equal the one-process run; the store row's tokens are the ranks'
    counted tokens."""
    from miniseries.store.db import open_store
    from miniseries.study.runspec import RunSpec
    from miniseries.study.sweep import execute

    tokens, tok = tiny_data
    spec = RunSpec(depth=2, steps=8, data=str(tokens), tokenizer=str(tok),
                   overrides=dict(TINY, val_tokens=4096), evals=2)  # fmt: skip
    monkeypatch.setenv("MINISERIES_RDZV_PORT", str(free_port()))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one, two = tmp_path / "one", tmp_path / "two"
    (r1,) = execute([spec], one, progress=False, launcher="spawn", log=lambda *_: None)
    (r2,) = execute([spec], two, progress=False, executor=executor, nodes=2, log=lambda *_: None)
    assert r1["status"] == r2["status"] == "done", r2.get("error")
    run1, run2 = (p / "runs" / spec.run_id for p in (one, two))
    _same_steps(run1, run2, 2)
    with open_store(two) as store:
        assert store.get_run(spec.run_id)["tokens"] == 8 * 512


def test_gpu_check_script_runs_its_cpu_parts(gpu_vocab_data, tmp_path):
    script = ROOT / "scripts" / "gpu_check.sh"
    bad = subprocess.run(["bash", str(script), "--nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument '--nope'" in bad.stderr
    helped = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--cpu" in helped.stdout
    corpus = Path(gpu_vocab_data[0]).parent / "corpus"
    out = tmp_path / "check"
    env = dict(os.environ, OUT=str(out), CORPUS=str(corpus), PY=sys.executable)
    res = subprocess.run(["bash", str(script), "--cpu"], capture_output=True, text=True, env=env,
                         timeout=600)  # fmt: skip
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    summary = (out / "summary.txt").read_text()
    assert "d2 gpu preset: median" in summary and "resume:" in summary and "PASS" in summary
    from miniseries.data.tokenizer import Tokenizer

    assert Tokenizer.load(out / "tokenizer").vocab_size == 32768  # the gpu preset's, staged
    assert param_counts(GPU.model_config(2)).total == json.loads(
        (out / "d2" / SUMMARY).read_text())["params"]["total"]  # fmt: skip
    assert CPU.dtype == "float32"  # the cpu preset never autocasts
