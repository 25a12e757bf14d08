"""Untrusted files: a checkpoint carrying a malicious pickle, an eval bundle zip that escapes its
folder, a download whose size or hash is wrong. Each is refused, and nothing it asked for happens.
"""

import functools
import hashlib
import http.server
import io
import os
import shutil
import stat
import threading
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from miniseries.cli import main
from miniseries.data import download
from miniseries.errors import UserError

TINY = ["--vocab-size", "512", "--seq-len", "64", "--batch-tokens", "512"]
TINY += ["--device-batch-size", "4", "--val-tokens", "1024", "--quiet", "--evals", "1"]


class Evil:
    """Unpickling this calls os.mkdir(marker): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def cli(argv, capsys) -> str:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err[-1500:])
    return lines[0]


def train_argv(tiny_data, out, steps=2):
    tokens, tok = tiny_data
    return ["train", "--depth", 1, "--steps", steps, "--out", out, "--data", tokens,
            "--tokenizer", tok, *TINY]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "d1"
    assert main([str(a) for a in train_argv(tiny_data, out)]) == 0
    return out


@pytest.fixture
def poisoned_run(finished_run, tmp_path) -> tuple[Path, Path]:
    """(run folder whose checkpoint.pt carries Evil among real weights, marker path)."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    marker = tmp_path / "PWNED"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["payload"] = Evil(marker)
    torch.save(state, run / "checkpoint.pt")
    return run, marker


def test_the_payload_really_runs_when_loaded_unsafely(poisoned_run, tmp_path):
    """Guard against a test that cannot fail: unsafe loading does create the marker."""
    run, marker = poisoned_run
    torch.load(run / "checkpoint.pt", weights_only=False)
    assert marker.is_dir()


def test_sample_refuses_a_malicious_checkpoint(poisoned_run, capsys):
    run, marker = poisoned_run
    line = cli(["sample", run, "--tokens", 4], capsys)
    assert str(run / "checkpoint.pt") in line and "cannot be loaded safely" in line
    assert not marker.exists()


def test_core_refuses_a_malicious_checkpoint(poisoned_run, tmp_path, capsys):
    run, marker = poisoned_run
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    line = cli(["core", run, "--bundle", bundle, "--max-per-task", 1, "--device", "cpu"], capsys)
    assert str(run / "checkpoint.pt") in line and "cannot be loaded safely" in line
    assert not marker.exists()


def test_resume_refuses_a_malicious_checkpoint(poisoned_run, tiny_data, capsys):
    run, marker = poisoned_run
    before = (run / "checkpoint.pt").read_bytes()
    line = cli(train_argv(tiny_data, run, steps=4), capsys)
    assert str(run / "checkpoint.pt") in line and "cannot be loaded safely" in line
    assert not marker.exists()
    assert (run / "checkpoint.pt").read_bytes() == before  # kept for inspection, not overwritten


# -- eval bundle zips ---------------------------------------------------------------------------


def _zip_with(entry) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("eval_bundle/core.yaml", "icl_tasks: []\n")
        zf.writestr("eval_bundle/eval_meta_data.csv", "Eval Task,Random baseline\n")
        zf.writestr(*entry)
    return buf.getvalue()


def _link(name, target):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


@pytest.mark.parametrize(
    "entry, says",
    [
        (("eval_bundle/../../../escaped.txt", "x"), "'..'"),
        (("/tmp/miniseries_abs_escape.txt", "x"), "absolute"),
        (_link("eval_bundle/eval_data", "/etc"), "symbolic link"),
    ],
)
def test_online_bundle_zip_that_escapes_is_refused(finished_run, tmp_path, entry, says, capsys):
    zpath = tmp_path / "served" / "eval_bundle.zip"
    zpath.parent.mkdir()
    zpath.write_bytes(_zip_with(entry))
    argv = ["core", finished_run, "--bundle", "online", "--url", zpath.as_uri(), "--device", "cpu"]
    line = cli(argv, capsys)
    assert "refusing to extract" in line and says in line
    cache = Path(os.environ["MINISERIES_CACHE"])
    assert not (cache / "eval_bundle" / "online" / "extracted").exists()
    assert not list(cache.rglob("escaped.txt")) and not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/miniseries_abs_escape.txt").exists()


# -- downloads ----------------------------------------------------------------------------------


class LyingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, but ``/short/...`` promises the full length and sends half of it."""

    def do_GET(self):
        if not self.path.startswith("/short/"):
            return super().do_GET()
        data = Path(self.translate_path(self.path.removeprefix("/short"))).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(LyingHandler, directory=str(root))
    )
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    srv.url, srv.root = f"http://127.0.0.1:{srv.server_address[1]}", root
    yield srv
    srv.shutdown()
    srv.server_close()


def _shard(path: Path) -> bytes:
    pq.write_table(pa.table({"text": [f"document {i} " * 20 for i in range(800)]}), path)
    return path.read_bytes()


def test_short_download_is_not_used(server, tmp_path):
    _shard(server.root / "shard_00000.parquet")
    dest = tmp_path / "out" / "shard_00000.parquet"
    dest.parent.mkdir()
    with pytest.raises(UserError, match="rerun to resume"):
        download.download_file(f"{server.url}/short/shard_00000.parquet", dest, retries=1,
                               backoff=0.01)  # fmt: skip
    assert not dest.exists()


def test_hash_mismatch_is_not_used(server, tmp_path):
    data = _shard(server.root / "shard_00000.parquet")
    dest = tmp_path / "shard_00000.parquet"
    url = f"{server.url}/shard_00000.parquet"
    with pytest.raises(UserError, match="sha256 .* does not match"):
        download.download_file(url, dest, sha256="0" * 64, retries=0)
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()
    good = hashlib.sha256(data).hexdigest()
    assert download.download_file(url, dest, sha256=good, retries=0) == 800
    assert dest.read_bytes() == data
    # a file already in place that does not match is fetched again, then replaced only if good
    dest.write_bytes(data[:-1] + b"\x00")
    assert download.download_file(url, dest, sha256=good, retries=0) == 800
    assert dest.read_bytes() == data


def test_short_eval_bundle_download_is_not_used(server, tmp_path):
    from miniseries.evaluate import online_bundle

    (server.root / "eval_bundle.zip").write_bytes(os.urandom(200_000))
    dest = tmp_path / "eval_bundle.zip"
    with pytest.raises(UserError, match="resume"):
        online_bundle.download(f"{server.url}/short/eval_bundle.zip", dest, retries=1)
    assert not dest.exists()  # the partial download stays in .part, for the next try to resume
