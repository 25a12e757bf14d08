"""Sweep overhead: a real CPU isoFLOP sweep, 4 budgets x 5 depths, through `execute`.

    .venv/bin/python benchmarks/bench_sweep.py [--workers 2] [--scale 1.0] [--launcher auto]
        [--data D --tokenizer T]

Goal: overhead = 1 - sum(train_s) / (workers x wall) <= 5%. Overhead is everything a worker slot
spends outside the training loop: python + torch start, the trainer's setup (model, optimizer,
data), validation evals and checkpoints, store bookkeeping, and slots left idle at the end.
Without --data it tokenizes ~1.5 MB of Python's standard library at vocab 512 (seconds).
--scale multiplies the budgets (runs get longer, overhead smaller). --launcher spawn measures a
fresh `python -m miniseries train` per run (the launcher before fork); the default is the sweep's
(auto: fork on CPU). Keep the bench itself from importing torch before the sweep (auto would
then spawn).
"""

import argparse
import json
import os
import sysconfig
import tempfile
import time
from pathlib import Path

TINY = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 8}
BUDGETS = (1e10, 2e10, 4e10, 8e10)
DEPTHS = (1, 2, 3, 4, 5)


def stand_in_data(folder: Path) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from miniseries.data.shards import tokenize_corpus
    from miniseries.data.tokenizer import Tokenizer

    root = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")[:20_000]
        if len(text) >= 500 and total < 1_500_000:
            docs.append(text)
            total += len(text)
    (folder / "corpus").mkdir(parents=True)
    pq.write_table(pa.table({"text": docs}), folder / "corpus" / "shard_00000.parquet")
    (folder / "corpus" / "manifest.json").write_text('{"source": "stdlib"}')
    tok = Tokenizer.train(iter(docs), 512)
    tok.save(folder / "tokenizer")
    tokens = tokenize_corpus(folder / "corpus", tok, folder / "tokens", progress=False)
    return tokens, folder / "tokenizer"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every budget")
    p.add_argument("--data")
    p.add_argument("--tokenizer")
    p.add_argument("--project", help="default: a temporary folder")
    p.add_argument("--launcher", default="auto", choices=("auto", "fork", "spawn"))
    args = p.parse_args()

    from miniseries.config import CPU
    from miniseries.study.runspec import isoflop_specs
    from miniseries.study.sweep import execute

    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    os.environ.setdefault("MINISERIES_CACHE", str(tmp / "cache"))
    if args.data:
        data, tok = Path(args.data), Path(args.tokenizer)
    else:
        data, tok = stand_in_data(tmp / "data")
    budgets = [c * args.scale for c in BUDGETS]
    specs = isoflop_specs(
        budgets, DEPTHS, CPU, data=str(data), tokenizer=str(tok), overrides=TINY,
        min_steps=1, evals=5,
    )  # fmt: skip
    project = Path(args.project or tmp / "project")
    t0 = time.time()
    rows = execute(specs, project, workers=args.workers, progress=False, launcher=args.launcher)
    wall = time.time() - t0
    [stats] = [json.loads(f.read_text()) for f in (project / "sweeps").glob("*.json")][-1:]
    starts = [r["wall_s"] - r["train_s"] for r in rows]  # inside the trainer, outside the loop
    steps = sorted(r["steps"] for r in rows)
    print(f"{len(rows)} runs ({len(budgets)} budgets x {len(DEPTHS)} depths), {steps[0]} to")
    print(f"{steps[-1]} steps, {args.workers} workers x {stats['threads']} threads")
    print(f"launcher: {stats['launcher']} (asked for {args.launcher})")
    print(f"wall {wall:.1f} s; sum of train time {stats['train_s']:.1f} s")
    print(f"overhead {100 * stats['overhead']:.1f}% (goal <= 5%)")
    per_run = (args.workers * wall - stats["train_s"]) / len(rows)
    print(f"per run outside the training loop: {per_run:.2f} s, of which in the trainer's own")
    print(f"evals/checkpoints: {sum(starts) / len(rows):.2f} s (the rest: process start + setup)")


if __name__ == "__main__":
    main()
