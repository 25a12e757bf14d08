"""The persistent compile cache: what `--compile` costs the first time a shape is trained on a
machine (cold) and every time after (warm, kernels read from the cache under the miniseries
cache dir).

Each case is a fresh `miniseries train --compile` process training --steps steps of one depth
with an empty or a filled cache; the difference of their wall times is the compile cost saved.
Also times the same run eager, for scale.

Run: .venv/bin/python benchmarks/bench_compile_cache.py [--depths 1,4] [--steps 5]
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from miniseries.data.defaults import resolve_data


def run(depth: int, steps: int, cache: Path, compile_: bool, out: Path) -> float:
    data, tok = resolve_data(None, None, 512)
    cmd = [
        sys.executable, "-m", "miniseries", "train", "--depth", str(depth), "--steps", str(steps),
        "--out", str(out), "--data", str(data), "--tokenizer", str(tok), "--evals", "1",
        "--quiet", "--threads", "1", *(["--compile"] if compile_ else []),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCHINDUCTOR_CACHE_DIR=str(cache))
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--depths", default="1,4")
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, 1 thread per run")
    print("| depth | eager s | compiled, cold cache s | compiled, warm cache s | compile saved s |")
    print("|---|---:|---:|---:|---:|")
    for depth in map(int, args.depths.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            eager = run(depth, args.steps, tmp / "cache", False, tmp / "e")
            cold = run(depth, args.steps, tmp / "cache", True, tmp / "c")
            warm = run(depth, args.steps, tmp / "cache", True, tmp / "w")
        print(f"| {depth} | {eager:.1f} | {cold:.1f} | {warm:.1f} | {cold - warm:.1f} |")


if __name__ == "__main__":
    main()
