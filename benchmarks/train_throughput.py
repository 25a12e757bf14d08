"""Training throughput and MFU of every cpu-preset depth, eager and compiled.

Times whole optimizer steps (forward + backward + Muon/AdamW step) on random tokens, after
warm-up, with the threads the trainer would use; MFU = achieved FLOP/s (accounting's
flops_per_token x tokens/s) over the measured fp32 matmul peak of this machine (miniseries.mfu).
With --profile, prints torch.profiler's top operators for the largest depth: where the time goes.

    .venv/bin/python benchmarks/train_throughput.py [--depths 1-7] [--threads 2] [--compile]
"""

import argparse
import platform
import time

import torch

from miniseries.accounting import flops_per_token
from miniseries.cli.common import int_range
from miniseries.config import CPU, model_config
from miniseries.mfu import measure_cpu_peak
from miniseries.model import GPT
from miniseries.optim import OptimConfig, build_optimizers


def step_time(depth: int, compiled: bool, steps: int, preset=CPU) -> float:
    cfg = model_config(depth, preset)
    torch.manual_seed(0)
    model = GPT(cfg)
    fwd = torch.compile(model) if compiled else model
    opts = build_optimizers(model, OptimConfig.from_preset(preset))
    rows = preset.batch_tokens // preset.seq_len
    x = torch.randint(0, cfg.vocab_size, (rows, cfg.seq_len))

    def step():
        fwd(x, x).backward()
        for o in opts:
            o.step()
        model.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--depths", type=int_range, default=list(range(1, 8)))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peak = measure_cpu_peak(args.threads)
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s): fp32 matmul peak {peak / 1e9:.1f} GFLOP/s (2048^2)"
    )
    print(f"cpu preset: vocab {CPU.vocab_size}, seq {CPU.seq_len}, batch {CPU.batch_tokens} tokens")
    print("depth  d_model  FLOPs/token   mode      ms/step   tokens/s   GFLOP/s   MFU")
    for depth in args.depths:
        cfg = model_config(depth, CPU)
        fpt = flops_per_token(cfg)
        for mode in ("eager", "compiled") if args.compile else ("eager",):
            dt = step_time(depth, mode == "compiled", args.steps)
            tps = CPU.batch_tokens / dt
            print(
                f"{depth:5d}  {cfg.d_model:7d}  {fpt:11,d}   {mode:8s}  {1e3 * dt:7.1f}  "
                f"{tps:9,.0f}  {tps * fpt / 1e9:8.1f}  {tps * fpt / peak:5.1%}"
            )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        depth = max(args.depths)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step_time(depth, False, 5)
        print(f"\nwhere the time goes at depth {depth} (eager):")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
