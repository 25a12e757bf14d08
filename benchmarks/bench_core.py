"""CORE throughput: examples/s of a tiny CPU model over the offline bundle, max 100 per task.

    .venv/bin/python benchmarks/bench_core.py [--depth 2] [--max-per-task 100] [--packages DIR]

Builds (or reuses) the offline bundle, trains a 1024-token BPE on Python's stdlib source (the
cpu preset's vocabulary), evaluates an untrained GPT of the cpu preset and prints examples/s.
Throughput depends on prompt lengths (the cpu preset's 128-token window crops most few-shot
prompts), so it is reported for this exact setting.
"""

import argparse
import sysconfig
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--max-per-task", type=int, default=100)
    p.add_argument("--packages", default=None, help="folder with the downloaded packages")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    from miniseries.config import CPU, model_config
    from miniseries.data.tokenizer import Tokenizer
    from miniseries.evaluate.core import evaluate_core, format_table
    from miniseries.evaluate.offline_bundle import build_offline_bundle
    from miniseries.train.model import GPT

    torch.set_num_threads(args.threads)
    bundle = build_offline_bundle(packages_dir=args.packages)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [f.read_text(errors="replace") for f in sorted(stdlib.glob("*.py"))[:200]]
    tok = Tokenizer.train(texts, CPU.vocab_size)
    torch.manual_seed(0)
    model = GPT(model_config(args.depth, CPU))
    t0 = time.time()
    res = evaluate_core(model, tok, bundle, max_per_task=args.max_per_task, progress=False)
    print(format_table(res))
    print(
        f"depth {args.depth} (d_model {model.cfg.d_model}, seq_len {model.cfg.seq_len}), "
        f"{args.threads} threads: {res.examples / (time.time() - t0):.1f} examples/s"
    )


if __name__ == "__main__":
    main()
