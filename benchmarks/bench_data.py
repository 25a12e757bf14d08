"""Data pipeline speed: tokenizer training, tokenization, loader throughput.

    .venv/bin/python benchmarks/bench_data.py [--corpus DIR] [--vocab 8192] [--seq-len 128]

Goals: tokenizer training <= 60 s at vocab 8192 on the offline corpus; loader >= 1M tokens/s
(20x the ~50k tokens/s the cpu preset's trainer consumes). Without --corpus it uses
CACHE/corpus/offline if present, else builds a stand-in corpus from Python's standard library
source (top-level blocks grouped into ~1-4 KB documents) and says so.
"""

import argparse
import sysconfig
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from miniseries.data.loader import TrainLoader, val_rows
from miniseries.data.shards import iter_texts, read_meta, tokenize_corpus
from miniseries.data.tokenizer import Tokenizer
from miniseries.paths import cache_dir


def stand_in_corpus(folder: Path, docs_per_shard: int = 4000) -> Path:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs, cur = [], ""
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        for block in path.read_text(encoding="utf-8", errors="replace").split("\n\n\n"):
            cur = f"{cur}\n\n\n{block}" if cur else block
            if len(cur) >= 1000:
                docs.append(cur)
                cur = ""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(docs), docs_per_shard):
        table = pa.table({"text": docs[i : i + docs_per_shard]})
        pq.write_table(table, folder / f"shard_{i // docs_per_shard:05d}.parquet")
    (folder / "manifest.json").write_text('{"source": "python stdlib stand-in"}')
    return folder


def bench_loader(shards: Path, batch: int, seq_len: int, remainder: str, seconds: float) -> dict:
    loader = TrainLoader(shards, batch, seq_len, seed=0, buffer=1000, remainder=remainder)
    loader.next_batch()  # warm the memory map
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        loader.next_batch()
        n += 1
    dt = time.perf_counter() - t0
    return {"tokens_per_s": n * batch * seq_len / dt, **loader.stats()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0, help="loader timing per setting")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = args.corpus
        if corpus is None and list((cache_dir() / "corpus" / "offline").glob("shard_*.parquet")):
            corpus = cache_dir() / "corpus" / "offline"
        if corpus is None:
            corpus = stand_in_corpus(tmp / "stdlib")
            print("corpus: STAND-IN (python stdlib source), the offline corpus is not built yet")
        else:
            print(f"corpus: {corpus}")
        texts = [t for batch in iter_texts(corpus) for t in batch]
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        print(f"  {len(texts):,} docs, {mb:.1f} MB")

        t0 = time.perf_counter()
        tok = Tokenizer.train(iter(texts), args.vocab)
        print(f"tokenizer train vocab {args.vocab}: {time.perf_counter() - t0:.1f} s (goal <= 60)")

        t0 = time.perf_counter()
        shards = tokenize_corpus(corpus, tok, tmp / "tokens", workers=2, progress=False)
        dt = time.perf_counter() - t0
        meta = read_meta(shards)
        ntok = sum(s["tokens"] for s in meta["splits"].values())
        nbytes = sum(s["bytes"] for s in meta["splits"].values())
        print(
            f"tokenize (2 threads, incl. hashing pass and writes): {dt:.1f} s, "
            f"{nbytes / 1e6 / dt:.2f} MB/s, {ntok / dt / 1e6:.2f} M tokens/s, "
            f"{nbytes / ntok:.2f} bytes/token"
        )

        for remainder in ("drop", "requeue"):
            r = bench_loader(shards, args.batch, args.seq_len, remainder, args.seconds)
            print(
                f"loader B={args.batch} T={args.seq_len} {remainder}: "
                f"{r['tokens_per_s'] / 1e6:.2f} M tokens/s (goal >= 1), "
                f"crop fraction {r['crop_fraction']:.3f}, utilisation {r['utilisation']:.2f}"
            )
        r = bench_loader(shards, 32, 2048, "drop", args.seconds)
        print(
            f"loader B=32 T=2048 drop (gpu shape): {r['tokens_per_s'] / 1e6:.2f} M tokens/s, "
            f"crop fraction {r['crop_fraction']:.3f}"
        )
        t0 = time.perf_counter()
        rows = val_rows(shards, args.seq_len, 64 * 1024)
        print(f"val_rows 64k tokens: {rows.shape} in {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
