"""Training throughput and MFU: today's trainer against the reference path, as a ratio in one run.

Times whole optimizer steps (forward + backward + Muon/AdamW step) on random tokens, after warm-up,
with the threads the trainer would use; MFU = achieved FLOP/s (accounting's flops_per_token x
tokens/s) over the measured fp32 matmul peak of this machine (miniseries.train.mfu).

Three modes per shape, timed in alternating rounds so a machine that speeds up or slows down mid-run
moves all alike (the ratio is the median of the per-round ratios, with their range):

  reference  the trainer as it was before the speed work: cpu preset with head dim 8 (5 heads at
             d4), eager, q/k/v as three matmuls, F.cross_entropy, Muon's Newton-Schulz without
             fused multiply-adds (the three old functions are kept below)
  one head   the cpu preset now (one head as wide as the model), eager
  now        what `make demo` trains: the cpu preset, compiled, kernels from a warm cache (the
             warm-up steps compile; they are not timed)

--nanochat times nanochat's comparison shapes instead (d2/width 128 and d4/width 256, head dim 64,
vocab 4096, seq 512, 4,096-token steps), eager and compiled, with 2 threads.
With --profile, prints torch.profiler's top operators for the largest depth (compiled).

    .venv/bin/python benchmarks/train_throughput.py [--depths 3-6] [--threads 1] [--rounds 5]
"""

import argparse
import platform
import statistics
import sys
import time
import types
from dataclasses import replace

import torch
import torch.nn.functional as F

from miniseries.accounting import flops_per_token
from miniseries.cli.common import int_range
from miniseries.config import CPU, ModelConfig, model_config
from miniseries.train import optim
from miniseries.train.mfu import measure_cpu_peak
from miniseries.train.model import GPT, apply_rotary, rms_norm
from miniseries.train.optim import OptimConfig, build_optimizers
from miniseries.train.trainer import compile_model

REFERENCE = replace(CPU, head_dim=8)  # the cpu preset's family before this benchmark's changes
NEWTON_SCHULZ = optim.zeropower_via_newtonschulz5


def reference_newton_schulz(G: torch.Tensor, steps: int = 5, dtype=None) -> torch.Tensor:
    """Muon's orthogonalisation as the reference trainer ran it: separate matmuls and scalings
    (the trainer's now fuses each step's multiply-adds into baddbmm; same result to ~1e-6)."""
    a, b, c = optim.NS_COEFFS
    X = G.to(dtype or torch.float32)
    tall = G.size(-2) > G.size(-1)
    X = X.mT if tall else X
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.mT if tall else X


def reference_attention(self, x, cos, sin):
    """CausalSelfAttention.forward as the reference trainer ran it: three q, k, v matmuls (the
    trainer's now concatenates the three weights into one matmul; same result)."""
    B, T, C = x.shape
    q = self.c_q(x).view(B, T, self.n_heads, self.head_dim)
    k = self.c_k(x).view(B, T, self.n_heads, self.head_dim)
    v = self.c_v(x).view(B, T, self.n_heads, self.head_dim)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    q, k = rms_norm(q), rms_norm(k)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


def reference_loss(self, logits, targets, reduction="mean"):
    """GPT.loss as the reference trainer computed it: F.cross_entropy (same value)."""
    flat = F.cross_entropy(
        logits.flatten(0, -2), targets.reshape(-1), ignore_index=-1, reduction=reduction
    )
    return flat.view(targets.shape) if reduction == "none" else flat


class Stepper:
    """One model, its optimizers and a batch: `time(n)` is seconds per optimizer step."""

    def __init__(self, cfg: ModelConfig, rows: int, compiled: bool, reference: bool = False):
        self.ns = reference_newton_schulz if reference else NEWTON_SCHULZ  # Muon's, while it runs
        torch.manual_seed(0)
        self.model = GPT(cfg)
        for block in self.model.blocks if reference else ():
            block.attn.forward = types.MethodType(reference_attention, block.attn)
        if reference:
            self.model.loss = types.MethodType(reference_loss, self.model)
        self.forward = compile_model(self.model, "cpu") if compiled else self.model
        self.opts = build_optimizers(self.model, OptimConfig.from_preset(CPU))
        self.x = torch.randint(0, cfg.vocab_size, (rows, cfg.seq_len))
        self.tokens = rows * cfg.seq_len
        self.fpt = flops_per_token(cfg)
        t = time.perf_counter()
        for _ in range(3):
            self.step()
        self.warmup_s = time.perf_counter() - t

    def step(self) -> None:
        optim.zeropower_via_newtonschulz5 = self.ns
        try:
            self.forward(self.x, self.x).backward()
            for o in self.opts:
                o.step()
            self.model.zero_grad(set_to_none=True)
        finally:
            optim.zeropower_via_newtonschulz5 = NEWTON_SCHULZ

    def time(self, steps: int) -> float:
        t = time.perf_counter()
        for _ in range(steps):
            self.step()
        return (time.perf_counter() - t) / steps


def compare(steppers: list[Stepper], steps: int, rounds: int) -> list[list[float]]:
    """Seconds per step of each stepper, one timing of each per round, in turn."""
    times: list[list[float]] = [[] for _ in steppers]
    for _ in range(rounds):
        for s, t in zip(steppers, times):
            t.append(s.time(steps))
    return times


def row(label: str, s: Stepper, dt: float, peak: float) -> str:
    tps = s.tokens / dt
    return (
        f"| {label} | {1e3 * dt:.1f} | {tps:,.0f} | {tps * s.fpt / 1e9:.1f} | "
        f"{tps * s.fpt / peak:.1%} |"
    )


def cpu_preset(args, peak: float) -> None:
    rows = CPU.batch_tokens // CPU.seq_len
    print("| depth | mode | ms/step | tokens/s | GFLOP/s | MFU | / reference |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for depth in args.depths:
        modes = {
            "reference": Stepper(model_config(depth, REFERENCE), rows, False, reference=True),
            "one head, eager": Stepper(model_config(depth, CPU), rows, compiled=False),
            "now (one head, compiled)": Stepper(model_config(depth, CPU), rows, compiled=True),
        }
        times = compare(list(modes.values()), args.steps, args.rounds)
        for (name, s), t in zip(modes.items(), times):
            ratios = [a / b for a, b in zip(times[0], t)]
            span = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            print(row(f"{depth} | {name}", s, statistics.median(t), peak) + f" {span} |")
        sys.stdout.flush()


def nanochat_shapes(args, peak: float) -> None:
    print("| shape | mode | ms/step | tokens/s | GFLOP/s | MFU | compiled / eager |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for depth, width in ((2, 128), (4, 256)):
        cfg = ModelConfig(depth, width, width // 64, vocab_size=4096, seq_len=512)
        eager = Stepper(cfg, 8, compiled=False)
        comp = Stepper(cfg, 8, compiled=True)
        ta, tb = compare([eager, comp], args.steps, args.rounds)
        ratio = statistics.median(a / b for a, b in zip(ta, tb))
        name = f"d{depth}/width {width}"
        print(row(f"{name} | eager", eager, statistics.median(ta), peak) + " |")
        print(row(f"{name} | compiled", comp, statistics.median(tb), peak) + f" {ratio:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--depths", type=int_range, default=list(range(3, 7)))
    ap.add_argument("--threads", type=int, default=None, help="default 1 (2 with --nanochat)")
    ap.add_argument("--steps", type=int, default=20, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--nanochat", action="store_true", help="nanochat's comparison shapes")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    threads = args.threads or (2 if args.nanochat else 1)
    torch.set_num_threads(threads)
    peak = measure_cpu_peak(threads)
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{threads} thread(s): fp32 matmul peak {peak / 1e9:.1f} GFLOP/s (2048^2); "
        f"{args.rounds} alternating rounds of {args.steps} steps, medians\n"
    )
    (nanochat_shapes if args.nanochat else cpu_preset)(args, peak)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        depth = max(args.depths)
        s = Stepper(model_config(depth, CPU), CPU.batch_tokens // CPU.seq_len, compiled=True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            s.time(5)
        print(f"\nwhere the time goes at depth {depth} (compiled):")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
