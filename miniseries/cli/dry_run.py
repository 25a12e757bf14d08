"""`--dry-run` of sweep, series, run and demo: every run and the totals, with time and cost.

Not a command: the flags and the printing those four commands share. A dry run reads no data,
tokenizer or store (miniseries/study/plan_cost.py says where the speed comes from).
"""

import argparse

from miniseries.study.plan_cost import NO_DATA

COST_HELP = (
    "with --dry-run: time and cost. GPUs: --gpus N --gpu-peak H100|FLOP/s --mfu M|measured "
    "[--gpu-hour-usd P]; without --gpus, a CPU plan is timed on this machine"
)


def add_cost_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dry-run cost", COST_HELP)
    g.add_argument("--gpus", type=int, help="GPUs in all (runs are packed onto them)")
    g.add_argument("--gpu-peak", help="one GPU's dense bf16 FLOP/s, or its name: H100, A100, ...")
    g.add_argument("--mfu", help="model FLOPs utilisation, e.g. 0.4, or 'measured' (the project's)")
    g.add_argument("--gpu-hour-usd", type=float, help="price of one GPU-hour in dollars")


def plan_data(args, vocab_size: int) -> tuple[str, str]:
    """(data, tokenizer): the real folders, or placeholders when a dry run has none."""
    from miniseries.data.defaults import resolve_data
    from miniseries.errors import UserError

    try:
        data, tok = resolve_data(args.data, args.tokenizer, vocab_size)
        return str(data), str(tok)
    except UserError:
        if not args.dry_run:
            raise
        return args.data or NO_DATA, args.tokenizer or NO_DATA


def costs(specs, args, workers: int, nproc: int = 1):
    """(per-run costs, wall seconds of the whole plan, what they assume) or None without a way
    to time the runs (a GPU plan with no --gpus)."""
    from miniseries.config import get_preset
    from miniseries.errors import UserError
    from miniseries.study import plan_cost as cost

    if args.gpus:
        if not (args.gpu_peak and args.mfu):
            raise UserError("--gpus needs --gpu-peak (e.g. H100) and --mfu (e.g. 0.4 or measured)")
        mfu = cost.measured_mfu(args.project) if args.mfu == "measured" else float(args.mfu)
        rate = cost.GpuRate(args.gpus, cost.gpu_peak(args.gpu_peak), mfu, args.gpu_hour_usd)
        runs = cost.gpu_costs(specs, rate, nproc)
        slots = max(1, args.gpus // nproc)
        wall = cost.makespan([r.seconds for r in runs], slots)
        return runs, wall, f"{args.gpus} GPUs at {rate.peak:.3g} FLOP/s, MFU {mfu:.0%}"
    if any(get_preset(s.preset).dtype != "float32" for s in specs):
        return None
    threads = max(1, (get_preset(specs[0].preset).threads or 1) // workers)
    runs = cost.cpu_costs(specs, cost.cpu_step_seconds(specs, threads), compile_cached())
    wall = cost.makespan([r.seconds for r in runs], workers)
    return runs, wall, f"this CPU, {workers} worker(s) x {threads} thread(s), steps timed now"


def compile_cached() -> bool:
    from miniseries.paths import cache_dir

    root = cache_dir() / "compile"
    return root.is_dir() and any(root.iterdir())


def print_totals(got) -> None:
    """The plan's totals (the per-run figures are columns of the plan's table)."""
    from miniseries.formatting import fmt_hours, fmt_usd

    if got is None:
        print("time and cost: give --gpus N --gpu-peak H100 --mfu 0.4 [--gpu-hour-usd 2.5]")
        return
    runs, wall, assumes = got
    line = f"total: {len(runs)} runs, {sum(r.flops for r in runs):.3g} FLOPs, "
    line += f"wall {fmt_hours(wall / 3600)}"
    if runs and runs[0].gpu_hours is not None:
        hours = sum(r.gpu_hours for r in runs)
        line += f", {hours:,.0f} GPU-hours" if hours >= 100 else f", {hours:.3g} GPU-hours"
        if all(r.usd is not None for r in runs):
            line += f", {fmt_usd(sum(r.usd for r in runs))}"
    print(f"{line}  ({assumes})")


def show_dry_run(specs, args, title: str, workers: int, nproc: int = 1) -> None:
    """What `--dry-run` prints for sweep, series and run: the plan with each run's time (and
    cost), then the totals."""
    got = costs(specs, args, workers, nproc)
    show_plan(specs, title, got)
    print_totals(got)


def demo_dry_run(cfg, args) -> None:
    """The demo's runs stage by stage, each stage's wall time, and the whole demo's."""
    from miniseries.formatting import fmt_hours
    from miniseries.jobs.demo import dry_run_stages
    from miniseries.study import plan_cost as cost

    args.project = cfg.project
    stages = dry_run_stages(cfg)
    specs = [s for _, group in stages for s in group]
    got = costs(specs, args, cfg.workers)
    show_plan(specs, f"the demo: {len(specs)} runs -> {cfg.project}", got)
    if got is None:
        print_totals(got)
        return
    runs, _, assumes = got
    total, i = 0.0, 0
    for name, group in stages:
        seconds = [r.seconds for r in runs[i : i + len(group)]]
        if name == "series" and cfg.core_cap:
            seconds = [s + cost.CORE_S for s in seconds]
        wall = cost.makespan(seconds, cfg.workers) + cost.FIT_S
        print(f"  {name}: {len(group)} runs, {fmt_hours(wall / 3600)}")
        total, i = total + wall, i + len(group)
    total += cost.REPORT_S
    compiled = sorted({s.depth for s in specs if s.compile})
    print(f"  compiled (torch.compile where it pays): depths {compiled or 'none'}")
    print(f"total: {len(specs)} runs, training + evaluation + fitting {fmt_hours(total / 3600)} "
          f"(setup excluded; {assumes}). The time depends on this CPU (an AVX2 EPYC core is ~2x "
          "slower than an AVX-512 Xeon's), the load, and whether the data and compiled kernels "
          "are cached; steps are timed here, now")  # fmt: skip


def show_plan(specs, title: str, costs=None) -> None:
    """The runs as a table; with a dry run's costs, each run's time (GPU-hours, dollars)."""
    from rich.table import Table

    from miniseries.cli.common import console
    from miniseries.formatting import fmt_count, fmt_hours, fmt_usd

    t = Table(title=title)
    cols = ["run", "depth", "budget", "params", "tokens", "steps", "FLOPs", "ratio"]
    runs = costs[0] if costs else []
    gpu = bool(runs) and runs[0].gpu_hours is not None
    usd = gpu and runs[0].usd is not None
    cols += ["time"] * bool(runs) + ["GPU-h"] * gpu + ["$"] * usd
    for col in cols:
        t.add_column(col, justify="right")
    for i, s in enumerate(specs):
        plan = s.plan()
        cells = [
            "-" if s.data.endswith(NO_DATA) else s.run_id,  # the id needs the data's path
            str(s.depth),
            f"{s.budget:.3g}" if s.budget else "-",
            fmt_count(plan.params()),
            fmt_count(plan.tokens),
            str(plan.steps),
            f"{plan.flops:.3g}",
            f"{plan.ratio:.3g}",
        ]
        if runs:
            r = runs[i]
            cells.append(fmt_hours(r.seconds / 3600))
            if gpu:
                cells.append(f"{r.gpu_hours:.3g}")
            if usd:
                cells.append(fmt_usd(r.usd))
        t.add_row(*cells)
    console().print(t)
