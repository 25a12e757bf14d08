"""miniseries against nanochat at identical shapes, timed side by side in one process.

nanochat is imported from a checkout outside this repo (`--nanochat PATH`: e.g. a clone of
karpathy/nanochat in /tmp); nothing of it is copied here. Each shape is built by both (layers,
width, head dim 64, vocab, seq len; nanochat with full-context attention in every layer, its
default dtype on the CPU, fp32), each with its own optimizer (Muon + AdamW), and whole optimizer
steps on the same random tokens are timed in alternating rounds, eager and compiled (ours:
`train.trainer.compile_model`; nanochat: `torch.compile(model)`, its optimizer step is compiled
by nanochat itself). MFU is against this machine's measured fp32 matmul peak; FLOPs per token are
miniseries' accounting for its own model (nanochat's model at these shapes has a few more
parameters: value embeddings and per-layer scalars, so its own MFU would read a little higher).

    .venv/bin/python benchmarks/bench_vs_nanochat.py --nanochat /tmp/nanochat [--threads 2]
"""

import argparse
import platform
import statistics
import sys
import time

import torch

from miniseries.accounting import flops_per_token
from miniseries.config import CPU, ModelConfig
from miniseries.train.mfu import measure_cpu_peak
from miniseries.train.model import GPT
from miniseries.train.optim import OptimConfig, build_optimizers
from miniseries.train.trainer import compile_model

SHAPES = ((2, 128), (4, 256))  # (layers, width); head dim 64, vocab 4096, seq 512
VOCAB, SEQ, ROWS = 4096, 512, 8


def ours(depth: int, width: int, compiled: bool):
    torch.manual_seed(0)
    model = GPT(ModelConfig(depth, width, width // 64, vocab_size=VOCAB, seq_len=SEQ))
    forward = compile_model(model, "cpu") if compiled else model
    opts = build_optimizers(model, OptimConfig.from_preset(CPU))

    def step(x):
        forward(x, x).backward()
        for o in opts:
            o.step()
        model.zero_grad(set_to_none=True)

    return step


def nanochat(depth: int, width: int, compiled: bool):
    from nanochat.gpt import GPT as NanoGPT
    from nanochat.gpt import GPTConfig

    torch.manual_seed(0)
    heads = width // 64
    cfg = GPTConfig(sequence_len=SEQ, vocab_size=VOCAB, n_layer=depth, n_head=heads,
                    n_kv_head=heads, n_embd=width, window_pattern="L")  # fmt: skip
    model = NanoGPT(cfg)
    model.init_weights()
    forward = torch.compile(model) if compiled else model
    opt = model.setup_optimizer()

    def step(x):
        forward(x, x).backward()
        opt.step()
        model.zero_grad(set_to_none=True)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nanochat", required=True, help="a nanochat checkout (outside this repo)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, args.nanochat)
    torch.set_num_threads(args.threads)
    peak = measure_cpu_peak(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")  # fmt: skip
    print("| shape | mode | miniseries tok/s (MFU) | nanochat tok/s | miniseries / nanochat |")
    print("|---|---|---:|---:|---:|")
    x = torch.randint(0, VOCAB, (ROWS, SEQ))
    for depth, width in SHAPES:
        fpt = flops_per_token(ModelConfig(depth, width, width // 64, VOCAB, SEQ))
        for compiled in (False, True):
            steps = {"ours": ours(depth, width, compiled), "nano": nanochat(depth, width, compiled)}
            for step in steps.values():  # warm-up (and compile)
                for _ in range(3):
                    step(x)
            times = {k: [] for k in steps}
            for _ in range(args.rounds):
                for k, step in steps.items():
                    t = time.perf_counter()
                    for _ in range(args.steps):
                        step(x)
                    times[k].append((time.perf_counter() - t) / args.steps)
            tps = {k: ROWS * SEQ / statistics.median(v) for k, v in times.items()}
            ratio = statistics.median(b / a for a, b in zip(times["ours"], times["nano"]))
            print(f"| d{depth}/width {width} | {'compiled' if compiled else 'eager'} | "
                  f"{tps['ours']:,.0f} ({tps['ours'] * fpt / peak:.1%}) | {tps['nano']:,.0f} | "
                  f"{ratio:.2f}x |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
