"""Resources: a full disk while writing (a size-limited file: RLIMIT_FSIZE with SIGXFSZ ignored, so
writes fail with EFBIG as on a full disk) keeps the previous file intact and says so; a run that
would not fit in memory is refused up front with the estimate (miniseries.train.memory)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from miniseries.cli import main
from miniseries.config import CPU, GPU, ModelConfig
from miniseries.errors import UserError
from miniseries.train.memory import (
    GIB,
    available_bytes,
    check_fits,
    estimate,
    training_memory_bytes,
)

TINY = ["--vocab-size", "512", "--seq-len", "64", "--batch-tokens", "512"]
TINY += ["--device-batch-size", "4", "--val-tokens", "1024", "--quiet", "--evals", "1"]

# The child: files it writes may not grow past LIMIT bytes; a write past it raises EFBIG.
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
exec(sys.argv[2])
"""


def limited(limit: int, code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LIMITED, str(limit), code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])),
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_argv(tiny_data, out, steps):
    tokens, tok = tiny_data
    return ["train", "--depth", "1", "--steps", str(steps), "--out", str(out), "--data",
            str(tokens), "--tokenizer", str(tok), *TINY]  # fmt: skip


# -- full disk ----------------------------------------------------------------------------------


def test_full_disk_during_checkpoint_keeps_the_previous_one(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(train_argv(tiny_data, run, 2)) == 0
    good = sha(run / "checkpoint.pt")
    size = (run / "checkpoint.pt").stat().st_size
    code = "from miniseries.cli import main; sys.exit(main(sys.argv[3:]))"
    res = limited(size // 2, code, *train_argv(tiny_data, run, 4))
    assert sha(run / "checkpoint.pt") == good  # the previous checkpoint is intact (holds today)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "could not write checkpoint" in lines[0] and "intact" in lines[0]
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_full_disk_during_an_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("the old, complete file")
    code = (
        "from miniseries.paths import atomic_write_text\n"
        "try:\n"
        "    atomic_write_text(sys.argv[3], 'x' * 100_000)\n"
        "except OSError as e:\n"
        "    print(e.errno); sys.exit(3)\n"
    )
    res = limited(10_000, code, target)
    assert res.returncode == 3, res.stderr  # the write failed as on a full disk (EFBIG)
    assert int(res.stdout) == 27
    assert target.read_text() == "the old, complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temp file left


def test_full_disk_during_a_store_write_loses_nothing(tmp_path):
    from miniseries.store.db import open_store

    with open_store(tmp_path) as store:
        store.ensure_run("a" * 12, kind="single", depth=1)
        store.add_curve("a" * 12, [{"step": s, "val_bpb": 1.0} for s in range(10)])
    size = (tmp_path / "miniseries.db").stat().st_size + 50_000
    code = (
        "from miniseries.store.db import open_store\n"
        "from miniseries.errors import UserError\n"
        "store = open_store(sys.argv[3])\n"
        "rows = [{'step': s, 'val_bpb': 0.5, 'train_loss': 0.1 * s} for s in range(10, 100_000)]\n"
        "try:\n"
        "    store.add_curve('a' * 12, rows)\n"
        "except UserError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    res = limited(size, code, tmp_path)
    assert res.returncode == 3, (res.stdout, res.stderr[-2000:])
    assert "full disk" in res.stdout and "intact" in res.stdout
    with open_store(tmp_path, create=False) as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # what was committed is still there, and the failed transaction left no row of its own
        assert [r["step"] for r in store.curve("a" * 12)] == list(range(10))


# -- memory -------------------------------------------------------------------------------------


def test_memory_estimate_known_answer():
    cfg = ModelConfig(depth=2, d_model=64, n_heads=4, vocab_size=512, seq_len=128)
    e = estimate(cfg, rows=8)
    matrices, embed = 12 * 2 * 64 * 64, 512 * 64  # padded vocab 512
    total = matrices + 2 * embed
    assert e.weights_grads == total * 8
    assert e.optimizer == matrices * 4 + 2 * embed * 8  # Muon 4 bytes, AdamW 8 bytes a param
    assert e.activations == 2 * 8 * 128 * 64 * 34
    assert e.logits == 8 * 128 * 512 * 12
    assert training_memory_bytes(cfg, 8) == e.total
    assert estimate(cfg, 8, optimizer="adamw").optimizer == total * 8


def test_memory_estimate_scales_with_the_batch_not_the_weights():
    cfg = GPU.model_config(12)
    one, two = estimate(cfg, 16), estimate(cfg, 32)
    assert two.activations == 2 * one.activations and two.logits == 2 * one.logits
    assert two.weights_grads == one.weights_grads and two.optimizer == one.optimizer
    assert estimate(cfg, 16, seq_len=1024).activations * 2 == one.activations


def test_nanochat_d20_on_one_gpu_is_tens_of_gib():
    """nanochat trains d20 with 32 rows of 2048 per H100 (80 GB): the estimate must agree it is
    big but plausible, and that 64 rows would not fit."""
    cfg = GPU.model_config(20)
    assert 30 * GIB < training_memory_bytes(cfg, 32) < 120 * GIB
    with pytest.raises(UserError, match="lower --device-batch-size"):
        check_fits(estimate(cfg, 64), available=80 * GIB, device="cuda:0")


def test_check_fits_names_the_estimate_and_the_fix():
    e = estimate(GPU.model_config(20), 32)
    with pytest.raises(UserError) as err:
        check_fits(e, available=8 * GIB, what="depth 20")
    msg = str(err.value)
    assert "depth 20" in msg and f"{e.total / GIB:.2f} GiB" in msg and "8.00 GiB" in msg
    assert "activations" in msg and "\n" not in msg
    check_fits(training_memory_bytes(CPU.model_config(2), 8), available=8 * GIB)  # fits: silent


def test_available_memory_is_read_from_the_machine():
    avail = available_bytes("cpu")
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert avail is not None and 0 < avail <= total
    assert available_bytes("mps") is None  # unknown: nothing is refused
    check_fits(10**30, available=None, device="mps")
    with pytest.raises(UserError, match="available on cpu"):
        check_fits(avail * 4, device="cpu")  # measured, not given


def test_memory_module_imports_without_torch():
    code = "import sys, miniseries.train.memory; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
