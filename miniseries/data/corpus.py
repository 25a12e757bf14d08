"""The corpus format: parquet shards of documents plus a manifest, whatever the source.

Every source (offline packages, downloaded parquet shards, a local folder; see data/build.py)
ends as the same thing, so the tokenizer and the token sharder need to know only this module:

    <corpus>/shard_00000.parquet, shard_00001.parquet, ...   a ``text`` column, one document a row
    <corpus>/manifest.json                                     what is in it and how it was made

The manifest is written last: a folder with a manifest whose shards all match it is a finished
corpus, and building it again is a no-op ("cached"). Shards and manifest are written to temp files
and renamed into place, so a reader never sees half a file.
"""

import hashlib
import json
import os
import random
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from miniseries.errors import UserError
from miniseries.paths import atomic_write_text

MANIFEST = "manifest.json"
SHARD_BYTES = 32_000_000  # ~32 MB of text per shard: big enough to stream well, small to shuffle
ROW_GROUP = 1024  # rows per parquet row group: iter_documents streams one group at a time
MIN_CHARS = 200  # offline documents shorter than this are headings or stubs, not prose
BENCHMARK_NOTE = (
    "no CORE benchmark data (ARC, HellaSwag, PIQA, ...) is drawn from these sources; "
    "keep training text disjoint from benchmark text"
)


def shard_name(i: int) -> str:
    return f"shard_{i:05d}.parquet"


# ----------------------------------------------------------------------------- document helpers


def normalize(text: str) -> str:
    """The form two documents are compared in: lowercase, whitespace collapsed."""
    return " ".join(text.lower().split())


def doc_hash(text: str) -> bytes:
    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=16).digest()


def dedup(docs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Keep the first of each (source, text) pair whose normalised text was not seen before."""
    seen: set[bytes] = set()
    out = []
    for source, text in docs:
        h = doc_hash(text)
        if h not in seen:
            seen.add(h)
            out.append((source, text))
    return out


def drop_short(docs: Iterable[tuple[str, str]], min_chars: int) -> list[tuple[str, str]]:
    return [(s, t) for s, t in docs if len(t.strip()) >= min_chars]


def shuffled(docs: list, seed: int) -> list:
    """A copy of ``docs`` in an order fixed by ``seed`` (the same on every machine)."""
    out = list(docs)
    random.Random(seed).shuffle(out)
    return out


def cap_bytes(docs: list[tuple[str, str]], max_mb: float | None) -> list[tuple[str, str]]:
    """The leading documents whose UTF-8 text fits in ``max_mb`` megabytes (10^6 bytes)."""
    if max_mb is None:
        return docs
    limit, total, out = max_mb * 1e6, 0, []
    for source, text in docs:
        n = len(text.encode("utf-8"))
        if total + n > limit:
            break
        total += n
        out.append((source, text))
    return out


def split(docs: list, val_fraction: float) -> tuple[list, list]:
    """(train, val): the last ``val_fraction`` of an already shuffled list is validation."""
    if not 0 < val_fraction < 1:
        raise UserError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    n_val = max(1, round(len(docs) * val_fraction))
    if n_val >= len(docs):
        raise UserError(f"{len(docs)} documents are too few to hold out {val_fraction:.0%}")
    return docs[:-n_val], docs[-n_val:]


def tidy(text: str) -> str:
    """Strip trailing spaces per line, collapse 3+ newlines to 2, trim the ends."""
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# ----------------------------------------------------------------------------- writing / reading


def write_shards(out: Path, texts: Iterable[str], shard_bytes: int = SHARD_BYTES) -> list[dict]:
    """Write documents into numbered parquet shards of about ``shard_bytes`` of text each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict] = []
    batch: list[str] = []
    size = 0

    def flush():
        nonlocal batch, size
        name = shard_name(len(shards))
        tmp = out / f".{name}.tmp{os.getpid()}"
        pq.write_table(
            pa.table({"text": pa.array(batch, pa.string())}), tmp, row_group_size=ROW_GROUP
        )
        os.replace(tmp, out / name)
        shards.append(
            {
                "file": name,
                "rows": len(batch),
                "text_bytes": size,
                "size": (out / name).stat().st_size,
            }
        )
        batch, size = [], 0

    for text in texts:
        batch.append(text)
        size += len(text.encode("utf-8"))
        if size >= shard_bytes:
            flush()
    if batch:
        flush()
    return shards


def write_manifest(out: Path, manifest: dict) -> None:
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def load_manifest(corpus_dir: str | os.PathLike) -> dict:
    """The manifest of a finished corpus; UserError if the folder holds none."""
    path = Path(corpus_dir) / MANIFEST
    if not path.is_file():
        raise UserError(
            f"no corpus at {corpus_dir} (no {MANIFEST}); build one with "
            "`miniseries data build --source offline|fineweb-edu|climbmix|local`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def is_complete(corpus_dir: Path, params: dict | None = None) -> bool:
    """True when the manifest exists, every shard it lists has its recorded size, and (if given)
    the build parameters match the ones it was built with."""
    try:
        manifest = load_manifest(corpus_dir)
    except (UserError, json.JSONDecodeError):
        return False
    if params is not None and manifest.get("params") != params:
        return False
    for shard in manifest.get("shards", []):
        path = Path(corpus_dir) / shard["file"]
        if not path.is_file() or path.stat().st_size != shard["size"]:
            return False
    return bool(manifest.get("shards"))


def iter_documents(corpus_dir: str | os.PathLike) -> Iterator[str]:
    """Stream the texts of a corpus, shard by shard and row group by row group, in order."""
    import pyarrow.parquet as pq

    manifest = load_manifest(corpus_dir)
    files = [s["file"] for s in manifest.get("shards", [])]
    files = files or sorted(p.name for p in Path(corpus_dir).glob("shard_*.parquet"))
    for name in files:
        pf = pq.ParquetFile(Path(corpus_dir) / name)
        for i in range(pf.num_row_groups):
            for text in pf.read_row_group(i, columns=["text"]).column("text").to_pylist():
                if text is not None:
                    yield text


def clear_shards(out: Path) -> None:
    """Remove a stale manifest and shards before a rebuild (never touches other files)."""
    (out / MANIFEST).unlink(missing_ok=True)
    for p in out.glob("shard_*.parquet"):
        p.unlink()


# ----------------------------------------------------------------------------- in-memory corpora


def write_documents(
    out: Path,
    docs: list[tuple[str, str]],
    *,
    source: str,
    params: dict,
    sub_sources: dict[str, dict],
    min_chars: int,
    seed: int,
    max_mb: float | None,
    shard_bytes: int = SHARD_BYTES,
) -> dict:
    """The common pipeline for sources read into memory: drop short, dedup, shuffle, cap, write.

    ``docs`` are (sub_source, text) pairs in a deterministic order; ``sub_sources`` maps each
    sub-source to what the manifest says about it (license, how it was fetched).
    """
    n_raw = len(docs)
    docs = drop_short(docs, min_chars)
    n_long = len(docs)
    docs = dedup(docs)
    n_unique = len(docs)
    docs = cap_bytes(shuffled(docs, seed), max_mb)
    if not docs:
        raise UserError(f"the {source} corpus came out empty (no documents of {min_chars}+ chars)")
    counts = {name: {"documents": 0, "bytes": 0, **info} for name, info in sub_sources.items()}
    for name, text in docs:
        counts[name]["documents"] += 1
        counts[name]["bytes"] += len(text.encode("utf-8"))
    clear_shards(out)
    shards = write_shards(out, (t for _, t in docs), shard_bytes)
    manifest = {
        "source": source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "documents": len(docs),
        "bytes": sum(c["bytes"] for c in counts.values()),
        "params": params,
        "filtering": {
            "documents_read": n_raw,
            "dropped_short": n_raw - n_long,
            "dropped_duplicates": n_long - n_unique,
            "dropped_by_max_mb": n_unique - len(docs),
            "min_chars": min_chars,
            "dedup": "blake2b of lowercased, whitespace-collapsed text",
            "shuffle_seed": seed,
        },
        "sources": counts,
        "benchmark_overlap": BENCHMARK_NOTE,
        "shards": shards,
    }
    write_manifest(out, manifest)
    return manifest
