"""Where things live on disk.

The data cache (corpora, tokenizers, token shards, eval bundles) is shared between projects:
``$MINISERIES_CACHE`` or ``~/.cache/miniseries``. A *project directory* holds one study: the
results store ``miniseries.db``, run folders ``runs/<run_id>/`` and the report.
"""

import os
from pathlib import Path

STORE_NAME = "miniseries.db"


def cache_dir() -> Path:
    """Root of the shared data cache (created on first use)."""
    root = Path(os.environ.get("MINISERIES_CACHE", Path.home() / ".cache" / "miniseries"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def store_path(project: str | os.PathLike) -> Path:
    return Path(project) / STORE_NAME


def runs_dir(project: str | os.PathLike) -> Path:
    return Path(project) / "runs"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Temp file beside ``path``, fsync, then os.replace: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, an interrupt: leave no half-written temp file behind
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
