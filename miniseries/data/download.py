"""Parquet shards over HTTP: parallel, resumable, verified before they are renamed into place.

nanochat trains on pre-shuffled parquet shards of web text (``shard_00000.parquet``, ...; a
``text`` column). Each shard is streamed to ``<name>.part``; an interrupted download resumes from
the bytes already there with an HTTP ``Range`` request (a server that answers 200 instead of 206
restarts it). A finished file must have the advertised size, open as parquet and have a ``text``
column before ``os.replace`` moves it into place, so a good shard is never overwritten by a bad
one. Only the standard library's urllib is used.
"""

import http.client
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from miniseries.data import corpus
from miniseries.errors import UserError
from miniseries.fetch import DownloadError, check_sha256
from miniseries.progress import progress_bar


@dataclass(frozen=True)
class Dataset:
    url: str  # format string with {i}, the shard index
    total_shards: int  # the last one is nanochat's validation shard
    license: str


DATASETS = {
    "fineweb-edu": Dataset(
        "https://huggingface.co/datasets/karpathy/fineweb-edu-100b-shuffle/resolve/main/"
        "shard_{i:05d}.parquet",
        1823,
        "ODC-By 1.0 (HuggingFaceFW/fineweb-edu)",
    ),
    "climbmix": Dataset(
        "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main/"
        "shard_{i:05d}.parquet",
        6543,
        "see the nvidia/ClimbMix dataset card (CC BY-NC 4.0 at the time of writing)",
    ),
}
DEFAULT_SHARDS = 2
CHUNK = 1 << 20
USER_AGENT = "miniseries-corpus/0.1"


def shard_url(base_url: str, i: int) -> str:
    """``base_url`` with ``{i}`` filled in, or ``base_url/shard_{i:05d}.parquet`` for a folder."""
    if "{i" in base_url:
        return base_url.format(i=i)
    return f"{base_url.rstrip('/')}/{corpus.shard_name(i)}"


def verify_parquet(path: Path, url: str) -> int:
    """Rows of a downloaded shard; DownloadError if it is not parquet or has no ``text`` column."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DownloadError(f"{url}: downloaded file is not a valid parquet file ({e})") from None
    names = pf.schema_arrow.names
    if "text" not in names:
        raise DownloadError(
            f"{url}: parquet file has no 'text' column (columns: {', '.join(names)})"
        )
    return pf.metadata.num_rows


def _total_from(resp, start: int) -> int | None:
    """Full file size from a 206's Content-Range or a 200's Content-Length."""
    if resp.status == 206:
        m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != start:
            return -1  # a range we did not ask for
        return None if m.group(2) == "*" else int(m.group(2))
    n = resp.headers.get("Content-Length")
    return int(n) if n is not None else None


def _fetch_once(url: str, part: Path, timeout: float) -> int | None:
    """One attempt: stream ``url`` into ``part`` (resuming); return the full size if known."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the .part may be complete already
            return have
        raise
    with resp:
        total = _total_from(resp, have)
        if total == -1:
            part.unlink(missing_ok=True)
            raise OSError("server answered with a range that was not asked for; restarting")
        if resp.status == 200:
            have = 0  # the server ignored Range (or none was sent): start from zero
        with open(part, "ab" if have else "wb") as f:
            while chunk := resp.read(CHUNK):
                f.write(chunk)
    return total


def download_file(
    url: str,
    dest: Path,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    sha256: str | None = None,
    verify=None,
    hint: str = "check --base-url and --shards",
):
    """Download ``url`` to ``dest`` (resumable, verified); return what ``verify`` returns.

    ``verify(path, url)`` raises DownloadError for a file that must not be used; the default,
    verify_parquet, returns a shard's row count. ``hint`` ends the message of a 4xx answer.

    With ``sha256`` (the expected hex digest, when the source publishes one) a file whose hash
    differs is deleted and never used, and a ``dest`` already in place must match it too.

    A ``dest`` that already verifies is kept as is. Network errors and 5xx answers are retried
    ``retries`` times with exponential backoff (capped at 30 s); a 404 or a file that is not
    parquet-with-text fails at once with a DownloadError naming the URL.
    """
    dest = Path(dest)
    verify = verify or verify_parquet
    if dest.exists():
        try:
            check_sha256(dest, sha256, url)
            return verify(dest, url)
        except DownloadError:
            pass  # a bad file in place: fetch again; it is only replaced by a verified one
    part = dest.with_name(dest.name + ".part")
    last = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(backoff * 2 ** (attempt - 1), 30.0))
        try:
            total = _fetch_once(url, part, timeout)
        except urllib.error.HTTPError as e:
            if e.code in (404, 403, 401, 410):
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason} ({hint})") from None
            last = f"HTTP {e.code} {e.reason}"
            continue
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
            last = str(getattr(e, "reason", e)) or type(e).__name__  # e.g. IncompleteRead
            continue
        size = part.stat().st_size
        if total is not None and size != total:
            last = f"got {size} of {total} bytes"
            continue  # resume on the next attempt
        try:
            check_sha256(part, sha256, url)
            rows = verify(part, url)
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
        return rows
    raise DownloadError(f"{url}: failed after {retries + 1} attempts ({last}); rerun to resume")


def download_shards(
    urls: list[str],
    out: Path,
    *,
    workers: int = 4,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> list[dict]:
    """Fetch ``urls`` into ``out/shard_00000.parquet, ...`` with ``workers`` threads.

    Returns one {file, rows, size, url} per shard. All shards are attempted; if any fail, one
    DownloadError lists them (the good ones stay, so a rerun fetches only the rest).
    """
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict] = {}
    errors: list[str] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("downloading shards", total=len(urls))

        def one(i: int, url: str) -> dict:
            dest = out / corpus.shard_name(i)
            rows = download_file(url, dest, retries=retries, backoff=backoff, timeout=timeout)
            return {"file": dest.name, "rows": rows, "size": dest.stat().st_size, "url": url}

        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(one, i, url): i for i, url in enumerate(urls)}
            for fut in as_completed(futures):
                try:
                    results[futures[fut]] = fut.result()
                except UserError as e:
                    errors.append(str(e))
                bar.advance(task)
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise DownloadError(
            f"{len(errors)} of {len(urls)} shards failed: " + "; ".join(sorted(errors)[:3]) + more
        )
    return [results[i] for i in range(len(urls))]


def build_download(
    source: str,
    out: Path,
    *,
    shards: int | None = None,
    base_url: str | None = None,
    workers: int = 4,
    force: bool = False,
    progress: bool = True,
    log=print,
    retries: int = 5,
    backoff: float = 1.0,
) -> Path:
    """The fineweb-edu / climbmix corpus: its first ``shards`` parquet shards plus a manifest."""
    ds = DATASETS[source]
    n = DEFAULT_SHARDS if shards is None else shards
    if n < 1 or (base_url is None and n > ds.total_shards):
        raise UserError(f"--shards must be from 1 to {ds.total_shards} for {source}, got {n}")
    url = base_url or ds.url
    params = {"shards": n, "base_url": url}
    if not force and corpus.is_complete(out, params):
        log(f"cached: {out}")
        return out
    (out / corpus.MANIFEST).unlink(missing_ok=True)
    urls = [shard_url(url, i) for i in range(n)]
    t0 = time.time()
    shard_list = download_shards(
        urls, out, workers=workers, retries=retries, backoff=backoff, progress=progress
    )
    manifest = {
        "source": source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "documents": sum(s["rows"] for s in shard_list),
        "bytes": sum(s["size"] for s in shard_list),  # parquet bytes (compressed), not text bytes
        "params": params,
        "sources": {
            source: {
                "documents": sum(s["rows"] for s in shard_list),
                "license": ds.license if base_url is None else "see the source's dataset card",
                "fetched": f"HTTP from {url}",
            }
        },
        "benchmark_overlap": "web text: may contain benchmark-like passages; not checked",
        "download_seconds": round(time.time() - t0, 1),
        "shards": shard_list,
    }
    corpus.write_manifest(out, manifest)
    return out
