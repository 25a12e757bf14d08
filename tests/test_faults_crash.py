"""Crashes: SIGKILL in the middle of every kind of write, then the same operation again.

Technique: the operation runs in a child (``python -c``) whose ``os.replace`` (or file ``write``) is
wrapped to SIGKILL the process at its N-th call on a given file, just *before* or just *after*
the rename. The parent then checks that nothing corrupt is read back (readers either refuse the
folder with a UserError or see the complete old/new file), reruns the operation, and compares the
result with an uninterrupted run: byte for byte for data files, tensor for tensor for checkpoints.
"""

import functools
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from miniseries.errors import UserError

HOOK = """
import os, signal, sys
N, MATCH, WHEN = int(sys.argv[1]), sys.argv[2], sys.argv[3]
_replace, calls = os.replace, [0]
def replace(src, dst, *a, **k):
    hit = MATCH in os.path.basename(str(dst))
    if hit:
        calls[0] += 1
    if hit and calls[0] == N and WHEN == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    out = _replace(src, dst, *a, **k)
    if hit and calls[0] == N and WHEN == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return out
os.replace = replace
exec(sys.argv[4])
"""


def killed_at(n: int, match: str, when: str, code: str, *args, expect_kill=True) -> None:
    """Run ``code`` in a child that SIGKILLs itself at the n-th os.replace onto ``match``."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    res = subprocess.run(
        [sys.executable, "-c", HOOK, str(n), match, when, code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    if expect_kill:
        assert res.returncode == -signal.SIGKILL, (res.returncode, res.stderr[-2000:])


def digest(folder: Path) -> dict:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# -- token shards (tokenize_corpus) -------------------------------------------------------------

TOKENIZE = """
from miniseries.data.shards import tokenize_corpus
from miniseries.data.tokenizer import Tokenizer
tokenize_corpus(sys.argv[5], Tokenizer.load(sys.argv[6]), sys.argv[7], 0.05, progress=False)
"""


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, tiny_data):
    from conftest import stdlib_documents, write_corpus

    from miniseries.data.shards import tokenize_corpus
    from miniseries.data.tokenizer import Tokenizer

    base = tmp_path_factory.mktemp("crash_corpus")
    corpus = write_corpus(base / "corpus", stdlib_documents(300_000))
    ref = tokenize_corpus(corpus, Tokenizer.load(tiny_data[1]), base / "ref", 0.05, progress=False)
    return corpus, ref


# train.bin, train_offsets.npy, val.bin, val_offsets.npy, meta.json: each rename, before and after
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_while_writing_token_shards(small_corpus, tiny_data, tmp_path, n, when):
    from miniseries.data.shards import load_split, read_meta

    corpus, ref = small_corpus
    out = tmp_path / "tokens"
    killed_at(n, "", when, TOKENIZE, corpus, tiny_data[1], out)
    complete = (out / "meta.json").exists()
    assert complete == (n == 5 and when == "after")  # meta.json last: its presence = finished
    if not complete:
        with pytest.raises(UserError, match="tokenize"):
            load_split(out, "train")  # an unfinished folder is refused, never half-read
    from miniseries.data.shards import tokenize_corpus
    from miniseries.data.tokenizer import Tokenizer

    tokenize_corpus(corpus, Tokenizer.load(tiny_data[1]), out, 0.05, progress=False)
    a, b = read_meta(ref), read_meta(out)
    assert {k: v for k, v in a.items() if k != "seconds"} == {
        k: v for k, v in b.items() if k != "seconds"
    }
    ra, rb = digest(ref), digest(out)
    ra.pop("meta.json"), rb.pop("meta.json")
    assert ra == rb  # token files byte-identical to an uninterrupted run's


def test_finished_shards_are_not_redone(small_corpus, tiny_data):
    from miniseries.data.shards import tokenize_corpus
    from miniseries.data.tokenizer import Tokenizer

    corpus, ref = small_corpus
    before = {p.name: p.stat().st_mtime_ns for p in ref.iterdir()}
    tokenize_corpus(corpus, Tokenizer.load(tiny_data[1]), ref, 0.05, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in ref.iterdir()} == before


# -- tokenizer save -----------------------------------------------------------------------------

TOKENIZER = """
from miniseries.cli import main
sys.exit(main(["tokenizer", "train", "--corpus", sys.argv[5], "--vocab", "300", "--out",
               sys.argv[6], "--force"]))
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_while_saving_the_tokenizer(small_corpus, tmp_path, when):
    from miniseries.data.tokenizer import Tokenizer

    corpus, _ = small_corpus
    ref, out = tmp_path / "ref", tmp_path / "tok"
    killed_at(1, "tokenizer.json", "never", TOKENIZER, corpus, ref, expect_kill=False)
    reference = Tokenizer.load(ref)
    out.mkdir()
    shutil.copy(ref / "tokenizer.json", out / "tokenizer.json")  # an old tokenizer in place
    (out / "tokenizer.json").write_text((out / "tokenizer.json").read_text() + "\n")
    old = (out / "tokenizer.json").read_bytes()
    killed_at(1, "tokenizer.json", when, TOKENIZER, corpus, out)
    now = (out / "tokenizer.json").read_bytes()
    assert now == old or now == (ref / "tokenizer.json").read_bytes()  # whole old or whole new
    Tokenizer.load(out)  # never a torn file
    killed_at(1, "tokenizer.json", "never", TOKENIZER, corpus, out, expect_kill=False)
    assert Tokenizer.load(out).id == reference.id


# -- results store ------------------------------------------------------------------------------

STORE = """
from miniseries.store.db import open_store
store = open_store(sys.argv[5])
for i in range(int(sys.argv[6])):
    with store.transaction():
        store.ensure_run(f"run{i:08d}", kind="isoflop", depth=i, budget=1e12)
        store.add_curve(f"run{i:08d}", [{"step": s, "val_bpb": 1.0 / (s + 1)} for s in range(50)])
        store.update_run(f"run{i:08d}", status="done", val_bpb=0.02)
        if i == int(sys.argv[7]):
            os.kill(os.getpid(), signal.SIGKILL)  # mid-transaction: nothing of run i committed
"""


def test_kill_in_the_middle_of_a_store_transaction(tmp_path):
    from miniseries.store.db import open_store

    killed_at(0, "", "never", STORE, tmp_path, 10, 6)
    with open_store(tmp_path, create=False) as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = store.list_runs()
        assert [r["run_id"] for r in runs] == [f"run{i:08d}" for i in range(6)]
        assert all(r["status"] == "done" and len(store.curve(r["run_id"])) == 50 for r in runs)
    killed_at(0, "", "never", STORE, tmp_path, 10, -1, expect_kill=False)  # rerun: finish
    killed_at(0, "", "never", STORE, tmp_path / "ref", 10, -1, expect_kill=False)
    with open_store(tmp_path) as a, open_store(tmp_path / "ref") as b:
        for table in ("runs", "curves"):
            cols, ra = a.rows(table)
            _, rb = b.rows(table)
            assert _no_stamps(cols, ra) == _no_stamps(cols, rb)


def _no_stamps(cols: list[str], rows: list[tuple]) -> list[list]:
    """Rows without the *_at timestamp columns (the only ones a rerun may change)."""
    return [[v for c, v in zip(cols, r) if not c.endswith("_at")] for r in rows]


# -- corpus download ----------------------------------------------------------------------------

DOWNLOAD = """
import builtins
from miniseries.data import download
download.CHUNK = 1 << 14
_open, writes = builtins.open, [0]
class Killer:
    def __init__(self, f): self.f = f
    def __enter__(self): return self
    def __exit__(self, *a): return self.f.__exit__(*a)
    def write(self, b):
        writes[0] += 1
        n = self.f.write(b)
        if writes[0] == N:
            self.f.flush(); os.kill(os.getpid(), signal.SIGKILL)
        return n
def hooked(path, mode="r", *a, **k):
    f = _open(path, mode, *a, **k)
    return Killer(f) if str(path).endswith(".part") else f
download.open = hooked
download.download_file(sys.argv[5], download.Path(sys.argv[6]), retries=0)
"""


@pytest.fixture
def server(tmp_path):
    from test_download import RangeHandler

    root = tmp_path / "www"
    root.mkdir()
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root))
    )
    srv.requests, srv.ignore_range, srv.root = [], False, root
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("n", [1, 7])
def test_kill_during_download_then_resume(server, tmp_path, n):
    from miniseries.data import download

    texts = [f"document {i}: " + "some words " * (i % 40) for i in range(20_000)]
    pq.write_table(pa.table({"text": texts}), server.root / "shard_00000.parquet")
    data = (server.root / "shard_00000.parquet").read_bytes()
    assert len(data) > 8 * (1 << 14)
    dest = tmp_path / "out" / "shard_00000.parquet"
    dest.parent.mkdir()
    url = f"{server.url}/shard_00000.parquet"
    killed_at(n, "", "never", DOWNLOAD, url, dest)  # N (the hook's first argument) = n
    part = dest.with_name(dest.name + ".part")
    assert not dest.exists() and 0 < part.stat().st_size < len(data)  # only the .part
    have = part.stat().st_size
    server.requests.clear()
    assert download.download_file(url, dest, retries=0) == 20_000
    assert dest.read_bytes() == data and not part.exists()
    assert server.requests == [("/shard_00000.parquet", f"bytes={have}-")]  # resumed, not redone


# -- training checkpoints -----------------------------------------------------------------------

TRAIN = """
from miniseries.cli import main
sys.exit(main(sys.argv[5:]))
"""
TINY = ["--vocab-size", "512", "--seq-len", "64", "--batch-tokens", "512"]
TINY += ["--device-batch-size", "4", "--val-tokens", "1024", "--quiet"]


def train_argv(tiny_data, out):
    tokens, tok = tiny_data
    return ["train", "--depth", "1", "--steps", "6", "--evals", "3", "--out", str(out),
            "--data", str(tokens), "--tokenizer", str(tok), *TINY]  # fmt: skip


@pytest.fixture(scope="module")
def reference_run(tiny_data, tmp_path_factory):
    from miniseries.cli import main

    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(train_argv(tiny_data, out)) == 0
    return out


def losses(run: Path) -> list[tuple[int, float]]:
    recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["train_loss"]) for r in recs if "train_loss" in r]


# checkpoints at steps 2, 4, 6 (and once more at the end): kill around the 2nd and the last
@pytest.mark.parametrize(
    "n, when",
    [
        (2, "before"),
        (2, "after"),
        (4, "before"),
    ],
)
def test_kill_while_writing_a_checkpoint_then_resume(tiny_data, reference_run, tmp_path, n, when):
    import torch

    from miniseries.cli import main

    out = tmp_path / "run"
    killed_at(n, "checkpoint.pt", when, TRAIN, *train_argv(tiny_data, out))
    state = torch.load(out / "checkpoint.pt", weights_only=True)  # always a whole checkpoint
    assert state["step"] in (2, 4, 6) and not (out / "summary.json").exists()
    # killed before the rename: the whole temp file is still there (and never read)
    assert bool(leftovers(out)) == (when == "before")
    assert main(train_argv(tiny_data, out)) == 0
    assert losses(out) == losses(reference_run)  # no step lost, none trained twice
    resumed = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert {"step": state["step"], "resumed_from": state["step"]} in resumed  # not from scratch
    a = torch.load(reference_run / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ref_bpb = json.loads((reference_run / "summary.json").read_text())["val_bpb"]
    assert json.loads((out / "summary.json").read_text())["val_bpb"] == ref_bpb
    assert leftovers(out) == []  # the rerun removed what the killed write left


def test_rerun_of_a_finished_run_trains_nothing(tiny_data, reference_run, tmp_path):
    from miniseries.cli import main

    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    before = losses(out)
    assert main(train_argv(tiny_data, out)) == 0
    assert losses(out) == before
