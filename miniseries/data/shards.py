"""Token shards: a corpus tokenized once, stored as flat token arrays the loader can memory-map.

Layout of a shard directory (one per corpus x tokenizer)::

    train.bin  val.bin                 tokens, uint16 (uint32 if vocab > 65535), docs back to back
    train_offsets.npy val_offsets.npy  int64 [docs + 1]: doc i is tokens[off[i]:off[i+1]]
    meta.json                          tokenizer id, vocab, dtype, counts, corpus fingerprint

Every document starts with ``<|bos|>``. The validation split is chosen by a hash of each
document's text (the smallest ``val_fraction`` of hashes), so it does not depend on shard order,
duplicates of a text land on the same side, and it never overlaps training. Val docs are stored in
hash order, so the fixed validation packing is the same however the corpus was sharded.
``meta.json`` is written last: its presence means the directory is complete, and tokenizing the
same corpus with the same tokenizer again is a no-op.
"""

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miniseries.errors import UserError
from miniseries.paths import atomic_write_text, cache_dir
from miniseries.progress import progress_bar

SPLITS = ("train", "val")
META = "meta.json"
FORMAT = "miniseries-tokens-1"
READ_BATCH = 512  # documents per encode_batch call


# -- the corpus (parquet shards with a `text` column) -------------------------------------------


def corpus_files(corpus_dir: str | os.PathLike) -> list[Path]:
    files = sorted(Path(corpus_dir).glob("shard_*.parquet"))
    if not files:
        raise UserError(
            f"no corpus shards (shard_*.parquet) in {corpus_dir}; build a corpus first"
            " (see `miniseries data --help`) or pass --corpus DIR"
        )
    return files


def corpus_fingerprint(corpus_dir: str | os.PathLike) -> str:
    """Cheap identity of a corpus: its manifest and the names and sizes of its shards."""
    h = hashlib.sha256()
    manifest = Path(corpus_dir) / "manifest.json"
    if manifest.is_file():
        h.update(manifest.read_bytes())
    for f in corpus_files(corpus_dir):
        h.update(f"{f.name}:{f.stat().st_size};".encode())
    return h.hexdigest()[:16]


def _open_shard(f: Path):
    """A corpus shard as a ParquetFile; a damaged one is a UserError naming it."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(f)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise UserError(f"cannot read corpus shard {f} ({e}); rebuild the corpus") from None


def corpus_rows(corpus_dir: str | os.PathLike) -> int:
    return sum(_open_shard(f).metadata.num_rows for f in corpus_files(corpus_dir))


def iter_texts(corpus_dir: str | os.PathLike, batch_size: int = READ_BATCH) -> Iterator[list[str]]:
    """Batches of document texts in corpus order (shards sorted by name); empty texts skipped."""
    import pyarrow.parquet as pq

    for f in corpus_files(corpus_dir):
        try:
            pf = pq.ParquetFile(f)
            if "text" not in pf.schema_arrow.names:
                raise UserError(f"corpus shard {f} has no `text` column; rebuild the corpus")
            for batch in pf.iter_batches(batch_size=batch_size, columns=["text"]):
                yield [t for t in batch.column(0).to_pylist() if t]
        except UserError:
            raise
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise UserError(f"cannot read corpus shard {f} ({e}); rebuild the corpus") from None


def doc_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


# -- writing --------------------------------------------------------------------------------


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def default_tokens_dir(corpus_dir: str | os.PathLike, tokenizer) -> Path:
    """``cache/tokens/<corpus-name>-<tokenizer-id>``."""
    return cache_dir() / "tokens" / f"{Path(corpus_dir).resolve().name}-{tokenizer.id}"


def tokenize_corpus(
    corpus_dir: str | os.PathLike,
    tokenizer,
    out_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.01,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Tokenize every document (BOS first) into train/val shards; returns the shard directory."""
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val_fraction must be in (0, 1), e.g. 0.01, got {val_fraction}")
    out = Path(out_dir) if out_dir is not None else default_tokens_dir(corpus_dir, tokenizer)
    fingerprint = corpus_fingerprint(corpus_dir)
    want = {"tokenizer_id": tokenizer.id, "corpus_fingerprint": fingerprint}
    want["val_fraction"] = val_fraction
    if _up_to_date(out, want):
        return out

    t0 = time.time()
    total = corpus_rows(corpus_dir)
    with progress_bar(progress) as bar:
        task = bar.add_task("hashing docs", total=total)
        hashes = []
        for texts in iter_texts(corpus_dir):
            hashes.extend(doc_hash(t) for t in texts)
            bar.advance(task, len(texts))
        if len(hashes) < 2:
            raise UserError(f"corpus {corpus_dir} has {len(hashes)} non-empty documents; need >= 2")
        k = max(1, round(val_fraction * len(hashes)))
        threshold = sorted(hashes)[k - 1]  # val = every doc whose hash is <= the k-th smallest
        if all(h <= threshold for h in hashes):
            raise UserError(
                f"all documents of {corpus_dir} fell into validation; lower val_fraction"
            )

        (out / META).unlink(missing_ok=True)  # the directory is incomplete until meta is rewritten
        out.mkdir(parents=True, exist_ok=True)
        dtype = token_dtype(tokenizer.vocab_size)
        task = bar.add_task("tokenizing", total=total)
        train = _SplitWriter(out, "train", dtype)
        try:
            val_docs = _encode(corpus_dir, tokenizer, workers, hashes, threshold, train, bar, task)
        except BaseException:
            train.abort()
            raise
    val = _SplitWriter(out, "val", dtype)
    for _, _, arr, nbytes in sorted(val_docs, key=lambda d: d[:2]):
        val.add(arr, nbytes)
    meta = {
        "format": FORMAT,
        **want,
        "vocab_size": tokenizer.vocab_size,
        "bos_id": tokenizer.bos_id,
        "dtype": dtype.name,
        "corpus": str(Path(corpus_dir).resolve()),
        "tokenizer_dir": str(Path(tokenizer.directory).resolve()) if tokenizer.directory else None,
        "splits": {"train": train.close(), "val": val.close()},
        "seconds": round(time.time() - t0, 3),
    }
    atomic_write_text(out / META, json.dumps(meta, indent=2))
    return out


def _encode(corpus_dir, tokenizer, workers, hashes, threshold, train, bar, task) -> list:
    """Second pass: stream train docs into ``train``; return val docs (hash, index, ids, bytes)."""
    dtype, val_docs, index = token_dtype(tokenizer.vocab_size), [], 0
    changed = UserError(f"corpus {corpus_dir} changed while it was being tokenized; run again")
    for texts in iter_texts(corpus_dir):
        if index + len(texts) > len(hashes):
            raise changed
        for text, ids in zip(texts, tokenizer.encode_batch(texts, num_threads=workers)):
            arr = np.empty(len(ids) + 1, dtype=dtype)
            arr[0] = tokenizer.bos_id
            arr[1:] = ids
            nbytes = len(text.encode("utf-8"))
            if hashes[index] <= threshold:
                val_docs.append((hashes[index], index, arr, nbytes))
            else:
                train.add(arr, nbytes)
            index += 1
        bar.advance(task, len(texts))
    if index != len(hashes):
        raise changed
    return val_docs


class _SplitWriter:
    """Streams one split's tokens to a temp file; ``close`` fsyncs and renames into place."""

    def __init__(self, out: Path, split: str, dtype: np.dtype):
        self.path = out / f"{split}.bin"
        self.tmp = out / f".{split}.bin.tmp{os.getpid()}"
        self.file = open(self.tmp, "wb")
        self.offsets = [0]
        self.bytes = 0

    def add(self, tokens: np.ndarray, nbytes: int) -> None:
        self.file.write(tokens.tobytes())
        self.offsets.append(self.offsets[-1] + len(tokens))
        self.bytes += nbytes

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)

    def close(self) -> dict:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)
        off_path = self.path.with_name(self.path.stem + "_offsets.npy")
        off_tmp = off_path.with_name(f".{off_path.name}.tmp{os.getpid()}")
        with open(off_tmp, "wb") as f:
            np.save(f, np.asarray(self.offsets, dtype=np.int64))
            f.flush()
            os.fsync(f.fileno())
        os.replace(off_tmp, off_path)
        return {"docs": len(self.offsets) - 1, "tokens": self.offsets[-1], "bytes": self.bytes}


def _up_to_date(out: Path, want: dict) -> bool:
    try:
        meta = read_meta(out)
        if any(meta.get(k) != v for k, v in want.items()):
            return False
        for split in SPLITS:
            load_split(out, split)
        return True
    except UserError:
        return False


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSplit:
    """One split: a memory-mapped token array and document offsets (doc i = tokens[o[i]:o[i+1]])."""

    tokens: np.ndarray
    offsets: np.ndarray
    bos_id: int
    vocab_size: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def doc(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]


def read_meta(shard_dir: str | os.PathLike) -> dict:
    path = Path(shard_dir) / META
    if not path.is_file():
        raise UserError(
            f"no token shards in {shard_dir} (missing {META}); run `miniseries data tokenize`"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        return meta
    except ValueError as e:
        raise UserError(f"corrupt {path} ({e}); delete {shard_dir} and tokenize again") from None


def load_split(shard_dir: str | os.PathLike, split: str) -> TokenSplit:
    """Memory-map one split and check it against meta.json (a damaged file is a UserError)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    shard_dir = Path(shard_dir)
    meta = read_meta(shard_dir)
    info = meta["splits"][split]
    dtype = np.dtype(meta["dtype"])
    path = shard_dir / f"{split}.bin"
    fix = f"delete {shard_dir} and run `miniseries data tokenize` again"
    size = path.stat().st_size if path.is_file() else -1
    if size != info["tokens"] * dtype.itemsize:
        raise UserError(
            f"token shard {path} is truncated or missing ({size} bytes, expected"
            f" {info['tokens'] * dtype.itemsize}); {fix}"
        )
    off_path = shard_dir / f"{split}_offsets.npy"
    try:
        offsets = np.load(off_path)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"cannot read {off_path} ({e}); {fix}") from None
    tokens = np.memmap(path, dtype=dtype, mode="r") if info["tokens"] else np.empty(0, dtype=dtype)
    ok = (
        offsets.ndim == 1
        and len(offsets) == info["docs"] + 1
        and offsets[0] == 0
        and offsets[-1] == info["tokens"]
        and bool(np.all(np.diff(offsets) > 0))
        and bool(np.all(tokens[offsets[:-1]] == meta["bos_id"]))
    )
    if not ok:
        raise UserError(f"token shard {path} does not match {off_path}; {fix}")
    return TokenSplit(tokens, offsets, int(meta["bos_id"]), int(meta["vocab_size"]))
