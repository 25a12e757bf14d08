"""What a plan costs before it runs: wall time (and money) of every run and of the whole plan.

A dry run needs only the plan — depths, steps, FLOPs — never data, a tokenizer or a store. The speed
comes from one of:

- GPUs: a run's seconds = model FLOPs / (its GPUs x peak x MFU); GPU-hours = FLOPs / (peak x MFU);
  dollars = GPU-hours x the hourly price. The MFU is given, or ``measured``: the median MFU of the
  finished runs in a project's store.
- this CPU: seconds per optimizer step of each depth, timed here on random tokens the way a sweep
  trains (one thread per worker, eager; compiled runs take COMPILED_STEP of that), plus what a run
  costs besides its steps (start-up, compiling, validation). The constants were measured on the
  project's 2-core machine (BENCHMARKS.md, "Dry run"); the dry run of the demo is checked there
  against the real demo's wall time.

Runs are packed onto the workers longest first (what the sweep executor does), so the wall time of
a batch of runs is its schedule's makespan, not the sum.
"""

import heapq
import statistics
import time
from dataclasses import dataclass

from miniseries.config import ARCH_FIELDS, PRESET_FIELDS
from miniseries.errors import UserError

NO_DATA = "(no data yet)"  # a dry run's stand-in for data that does not exist yet

# CPU model constants, measured on the 2-core machine (BENCHMARKS.md, "Dry run"):
COMPILED_STEP = 0.65  # compiled step time / eager step time at the cpu preset's depths 3-6
START_S = 2.0  # a run's start: fork, data loader, validation rows, checkpoint and summary writes
COMPILE_WARM_S = 3.0  # loading a shape's compiled kernels from the cache
COMPILE_COLD_S = 15.0  # compiling a shape the first time on a machine
EVAL_FRACTION = 0.4  # one validation pass: val tokens x this x (eager step time per token)
CORE_S = 10.0  # CORE-20 after a demo series run (50 examples per task)
FIT_S = 5.0  # fitting between the demo's stages (the window rule, the held-out prediction)
REPORT_S = 5.0  # the demo's report: bootstrap fits, plots, HTML


@dataclass
class GpuRate:
    """How fast and how dear the GPUs are."""

    gpus: int  # in all: runs are packed onto them
    peak: float  # FLOP/s of one GPU (dense bf16)
    mfu: float
    usd_per_gpu_hour: float | None = None

    def __post_init__(self):
        if self.gpus < 1 or self.peak <= 0 or not 0 < self.mfu <= 1:
            raise UserError(
                f"need --gpus >= 1, --gpu-peak > 0 and 0 < --mfu <= 1 (got {self.gpus}, "
                f"{self.peak:g}, {self.mfu:g})"
            )


@dataclass
class RunCost:
    label: str
    depth: int
    steps: int
    tokens: int
    flops: float
    seconds: float  # wall time of this run on its own GPUs / worker
    gpu_hours: float | None = None
    usd: float | None = None


def gpu_peak(value: str) -> float:
    """--gpu-peak: a number of FLOP/s, or a GPU name from train/mfu.py's table (H100, A100...)."""
    from miniseries.train.mfu import CUDA_PEAKS, cuda_peak

    try:
        return float(value)
    except ValueError:
        peak = cuda_peak(value)
    if peak is None:
        names = ", ".join(CUDA_PEAKS)
        raise UserError(f"unknown GPU {value!r}; give FLOP/s (e.g. 989e12) or one of {names}")
    return peak


def measured_mfu(project: str) -> float:
    """The median MFU of the finished runs in PROJECT's store (`--mfu measured`)."""
    from miniseries.store.db import open_store

    with open_store(project, create=False) as store:
        mfus = [r["mfu"] for r in store.list_runs(status="done") if r.get("mfu")]
    if not mfus:
        raise UserError(f"no finished run with a measured MFU in {project}; give --mfu 0.4")
    return statistics.median(mfus)


def gpu_costs(specs, rate: GpuRate, nproc: int = 1) -> list[RunCost]:
    """Each run on ``nproc`` GPUs at the given peak and MFU."""
    out = []
    for s in specs:
        plan = s.plan()
        gpu_s = plan.flops / (rate.peak * rate.mfu)
        hours = gpu_s / 3600
        usd = hours * rate.usd_per_gpu_hour if rate.usd_per_gpu_hour is not None else None
        out.append(RunCost(s.label(), s.depth, plan.steps, plan.tokens, plan.flops,
                           gpu_s / nproc, hours, usd))  # fmt: skip
    return out


def cpu_step_seconds(specs, threads: int = 1, steps: int = 6) -> dict[tuple, float]:
    """Eager seconds per optimizer step of every distinct model in the specs, timed here on
    random tokens (what the trainer does per step, minus data loading: a few % at these sizes)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    times = {}
    try:
        for s in specs:
            key = shape_key(s)
            if key not in times:
                times[key] = _time_steps(s, steps)
    finally:
        torch.set_num_threads(old)
    return times


def shape_key(spec) -> tuple:
    """What a step's time depends on: the model and the preset fields (not recipe settings)."""
    shape = PRESET_FIELDS + ARCH_FIELDS
    return (spec.preset, spec.depth, tuple(sorted((k, v) for k, v in spec.overrides.items()
                                                  if k in shape)))  # fmt: skip


def _time_steps(spec, steps: int) -> float:
    import torch

    from miniseries.train.model import GPT
    from miniseries.train.optim import OptimConfig, build_optimizers
    from miniseries.train.trainer import grad_accum_steps

    preset = spec.preset_config()
    torch.manual_seed(0)
    model = GPT(preset.model_config(spec.depth))
    opts = build_optimizers(model, OptimConfig.from_preset(preset))
    rows, accum = grad_accum_steps(preset, 1)
    x = torch.randint(0, preset.vocab_size, (rows, preset.seq_len))
    t = 0.0
    for i in range(steps + 1):  # the first step warms up, untimed
        t0 = time.perf_counter()
        for _ in range(accum):
            model(x, x).backward()
        for o in opts:
            o.step()
        model.zero_grad(set_to_none=True)
        t += (time.perf_counter() - t0) if i else 0.0
    return t / steps


def cpu_costs(specs, step_s: dict[tuple, float], compile_cached: bool = True) -> list[RunCost]:
    """Each run on one worker of this CPU: steps, validation passes, start-up and compiling (cold
    for the first run of a shape when the compile cache does not have it)."""

    seen, out = set(), []
    for s in specs:
        preset = s.preset_config()
        key = shape_key(s)
        eager = step_s[key]
        plan = s.plan()
        train = plan.steps * eager * (COMPILED_STEP if s.compile else 1.0)
        per_token = eager / preset.batch_tokens
        evals = (s.evals + 1) * (preset.val_tokens or 0) * per_token * EVAL_FRACTION
        fixed = START_S
        if s.compile:
            fixed += COMPILE_WARM_S if (compile_cached or key in seen) else COMPILE_COLD_S
            seen.add(key)
        out.append(RunCost(s.label(), s.depth, plan.steps, plan.tokens, plan.flops,
                           train + evals + fixed))  # fmt: skip
    return out


def makespan(seconds: list[float], workers: int) -> float:
    """Wall time of runs packed onto ``workers`` longest first (the sweep executor's order)."""
    free = [0.0] * max(1, workers)
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(free, free[0] + s)
    return max(free)


def compile_depths(specs) -> set[int]:
    """The depths worth compiling in a plan, by a measured rule: a shape compiles cold once per
    machine (COMPILE_COLD_S) and loads warm for every later run (COMPILE_WARM_S); it pays when the
    step time it saves over all the plan's runs of that shape, steps x (1 - COMPILED_STEP) x the
    eager step (estimated from the plan alone, `RunSpec.estimated_s`, so the choice and the run
    ids never depend on this machine's timing), is more than that. Short runs of small models
    lose time to compiling; the long ones gain it."""
    saved: dict = {}
    count: dict = {}
    for s in specs:
        key = shape_key(s)
        saved[key] = saved.get(key, 0.0) + s.estimated_s() * (1 - COMPILED_STEP)
        count[key] = count.get(key, 0) + 1
    pays = {k for k in saved if saved[k] > COMPILE_COLD_S + (count[k] - 1) * COMPILE_WARM_S}
    return {k[1] for k in pays}
