"""The HTTP shard downloader against a real local server (with Range support)."""

import functools
import http.server
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from miniseries.data import corpus, download
from miniseries.data.build import build_corpus
from miniseries.errors import UserError
from miniseries.fetch import DownloadError, check_sha256, sha256_file


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus ``Range: bytes=N-`` (206 answers); logs each request."""

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file() or self.server.ignore_range:
            return super().do_GET()
        data = path.read_bytes()
        start = int(rng.removeprefix("bytes=").split("-")[0])
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(RangeHandler, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.requests, srv.ignore_range, srv.root = [], False, root
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _shard(path: Path, i: int, rows: int = 500) -> bytes:
    texts = [f"shard {i} document {j}: " + "words " * (j % 50) for j in range(rows)]
    pq.write_table(pa.table({"text": texts, "id": list(range(rows))}), path)
    return path.read_bytes()


def test_parallel_download_of_several_shards(server, tmp_path):
    src = [_shard(server.root / corpus.shard_name(i), i) for i in range(5)]
    out = build_corpus("fineweb-edu", out=tmp_path / "fw", shards=5, base_url=server.url, workers=3)
    m = corpus.load_manifest(out)
    assert [s["file"] for s in m["shards"]] == [corpus.shard_name(i) for i in range(5)]
    for i, s in enumerate(m["shards"]):
        assert (out / s["file"]).read_bytes() == src[i] and s["rows"] == 500
    assert m["documents"] == 2500 and m["params"]["base_url"] == server.url
    docs = list(corpus.iter_documents(out))
    assert docs[0].startswith("shard 0 document 0") and docs[-1].startswith("shard 4 document 499")
    assert not list(out.glob("*.part"))
    # a second build is a no-op: no new requests
    n = len(server.requests)
    notes = []
    build_corpus("fineweb-edu", out=out, shards=5, base_url=server.url, log=notes.append)
    assert len(server.requests) == n and notes[0].startswith("cached")


def test_resume_truncated_part_with_range(server, tmp_path):
    data = _shard(server.root / "shard_00000.parquet", 0, rows=3000)
    dest = tmp_path / "out" / "shard_00000.parquet"
    dest.parent.mkdir()
    half = len(data) // 2
    (dest.parent / "shard_00000.parquet.part").write_bytes(data[:half])
    rows = download.download_file(f"{server.url}/shard_00000.parquet", dest)
    assert rows == 3000 and dest.read_bytes() == data
    assert server.requests == [("/shard_00000.parquet", f"bytes={half}-")]
    assert not (dest.parent / "shard_00000.parquet.part").exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = _shard(server.root / "shard_00000.parquet", 0)
    server.ignore_range = True
    dest = tmp_path / "shard_00000.parquet"
    (tmp_path / "shard_00000.parquet.part").write_bytes(b"stale bytes from elsewhere")
    download.download_file(f"{server.url}/shard_00000.parquet", dest)
    assert dest.read_bytes() == data  # a 200 answer replaced the .part instead of appending


def test_complete_part_is_finished_after_416(server, tmp_path):
    data = _shard(server.root / "shard_00000.parquet", 0)
    dest = tmp_path / "shard_00000.parquet"
    (tmp_path / "shard_00000.parquet.part").write_bytes(data)
    download.download_file(f"{server.url}/shard_00000.parquet", dest)
    assert dest.read_bytes() == data


def test_corrupt_files_rejected_and_not_renamed(server, tmp_path):
    (server.root / "shard_00000.parquet").write_bytes(b"this is not a parquet file" * 100)
    pq.write_table(pa.table({"body": ["no text column"]}), server.root / "shard_00001.parquet")
    out = tmp_path / "out"
    with pytest.raises(UserError) as e:
        build_corpus("climbmix", out=out, shards=2, base_url=server.url, workers=2)
    msg = str(e.value)
    assert "2 of 2 shards failed" in msg
    assert "shard_00000.parquet: downloaded file is not a valid parquet file" in msg
    assert "shard_00001.parquet: parquet file has no 'text' column (columns: body)" in msg
    assert not list(out.glob("shard_*")) and not (out / "manifest.json").exists()


def test_good_file_never_overwritten_by_bad(server, tmp_path):
    good = _shard(tmp_path / "good.parquet", 7)
    dest = tmp_path / "out" / "shard_00000.parquet"
    dest.parent.mkdir()
    dest.write_bytes(good)
    (server.root / "shard_00000.parquet").write_bytes(b"garbage")
    # a verified file in place is kept without any request
    assert download.download_file(f"{server.url}/shard_00000.parquet", dest) == 500
    assert server.requests == [] and dest.read_bytes() == good
    # a damaged file in place is refetched, but the bad download does not replace it
    dest.write_bytes(good[:100])
    with pytest.raises(UserError, match="not a valid parquet file"):
        download.download_file(f"{server.url}/shard_00000.parquet", dest)
    assert dest.read_bytes() == good[:100]


def test_404_reported_by_url(server, tmp_path):
    _shard(server.root / "shard_00000.parquet", 0)
    with pytest.raises(UserError) as e:
        build_corpus("fineweb-edu", out=tmp_path / "o", shards=2, base_url=server.url)
    assert f"{server.url}/shard_00001.parquet: HTTP 404" in str(e.value)
    assert "1 of 2 shards failed" in str(e.value)
    # the good shard stayed: a rerun would fetch only the missing one
    assert (tmp_path / "o" / "shard_00000.parquet").is_file()


def test_retries_then_fails_with_url(tmp_path):
    # nothing listens on this port: connection refused on every attempt
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}/shard_00000.parquet"
    with pytest.raises(UserError, match=rf"{url}: failed after 3 attempts"):
        download.download_file(url, tmp_path / "x.parquet", retries=2, backoff=0.01)


def test_shard_urls_and_limits():
    assert download.shard_url("http://h/d/", 3) == "http://h/d/shard_00003.parquet"
    assert download.shard_url("http://h/part-{i:03d}.parquet", 12) == "http://h/part-012.parquet"
    assert (
        download.DATASETS["fineweb-edu"]
        .url.format(i=0)
        .endswith("karpathy/fineweb-edu-100b-shuffle/resolve/main/shard_00000.parquet")
    )
    with pytest.raises(UserError, match="--shards must be from 1 to 1823"):
        build_corpus("fineweb-edu", shards=5000)
    with pytest.raises(UserError, match="--workers must be at least 1"):
        download.download_shards(["http://x"], Path("/tmp"), workers=0)


def test_sha256_check(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_file(path) == good
    check_sha256(path, good.upper(), "f.bin")
    check_sha256(path, None, "f.bin")  # no published digest: nothing to check
    with pytest.raises(
        DownloadError, match=r"f\.bin: sha256 ba7816bf8f01cfea\.\.\. does not match"
    ):
        check_sha256(path, "0" * 64, "f.bin")
