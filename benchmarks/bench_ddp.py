"""Gradient averaging across ranks: DDP (bucketed, overlapped with backward) against the reference
path (one blocking all_reduce per parameter after backward), on 2 gloo ranks of this CPU.

Each case trains the same run for --steps steps and reads the median step time of its log
(steady steps: the first quarter dropped). The communication share of a 2-rank step is
1 - (one process doing one rank's share of the work) / (a 2-rank step): what the ranks spend
waiting for and moving gradients.

Run: .venv/bin/python benchmarks/bench_ddp.py [--depth 4] [--steps 40]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from miniseries.data.defaults import resolve_data

BATCH = 1024  # the cpu preset's tokens per step


def step_ms(out: Path) -> float:
    """Median wall ms of the steady training steps in a run's log."""
    recs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if x.strip()]
    rates = [r["tokens_per_s"] for r in recs if r.get("tokens_per_s")]
    tokens = [r for r in recs if "train_loss" in r]
    per_step = tokens[1]["tokens"] - tokens[0]["tokens"] if len(tokens) > 1 else None
    steady = rates[len(rates) // 4 :]
    return 1000 * per_step / statistics.median(steady)


def train(args, out: Path, extra: list[str], ranks: int) -> float:
    base = [
        "train", "--depth", str(args.depth), "--steps", str(args.steps), "--out", str(out),
        "--data", args.data, "--tokenizer", args.tokenizer, "--evals", "1", "--quiet",
        "--threads", "1", *extra,
    ]  # fmt: skip
    if ranks > 1:
        torchrun = Path(sys.executable).with_name("torchrun")
        cmd = [str(torchrun), f"--nproc_per_node={ranks}", "--standalone", "-m", "miniseries"]
    else:
        cmd = [sys.executable, "-m", "miniseries"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(cmd + base, check=True, env=env, capture_output=True, text=True)
    return step_ms(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args()
    data, tok = resolve_data(None, None, 512)
    args.data, args.tokenizer = str(data), str(tok)
    batch = BATCH
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one = train(args, tmp / "one", ["--batch-tokens", str(batch // 2)], 1)
        ref = train(args, tmp / "ref", ["--grad-sync", "allreduce"], 2)
        ddp = train(args, tmp / "ddp", ["--grad-sync", "ddp"], 2)
    print(f"machine: {platform.processor() or platform.machine()}; cpu preset d{args.depth}")
    print("| path | ms/step (2 ranks) | communication share |")
    print("|---|---:|---:|")
    print(f"| one rank's work, 1 process | {one:.1f} | — |")
    for name, ms in (("all_reduce per parameter (reference)", ref), ("DDP buckets", ddp)):
        print(f"| {name} | {ms:.1f} | {max(0.0, 1 - one / ms):.0%} |")
    print(f"DDP / reference step time: {ddp / ref:.2f}")


if __name__ == "__main__":
    main()
