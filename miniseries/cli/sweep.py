"""`miniseries sweep`: isoFLOP profiles - every depth at every budget, in parallel, resumable.

Also the options `series` and `run` share: what each run is (data, seed, LRs, preset) and how runs
execute (project, workers, GPUs, Slurm, CORE, fail-fast).
"""

import argparse

from miniseries.cli.common import (
    add_preset_args,
    float_list,
    int_range,
    nonneg_int,
    positive_float,
    positive_int,
)
from miniseries.cli.dry_run import add_cost_args, show_plan

HELP = """\
Train each depth for exactly the tokens each FLOPs budget buys (whole optimizer steps), one run
per subprocess, N at once. Depths whose horizon is under the preset's min_steps are skipped.
Results go to PROJECT/miniseries.db; run folders to PROJECT/runs/<run_id>/.

Rerunning the same command never retrains a finished run and resumes an interrupted one from its
checkpoint; two sweeps on one project never train the same run twice.

  miniseries sweep --flops 1e12,3e12,1e13 --depths 1-6 --preset cpu --workers 2
  miniseries sweep --flops 1e18,3e18,6e18 --depths 8-20 --preset gpu --workers 8
  miniseries fit --project .   # then fit the laws to the sweep"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="isoFLOP sweep: each depth at each FLOPs budget (parallel, resumable)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--flops", type=float_list, required=True, metavar="C[,C...]", help="budgets")
    p.add_argument("--depths", type=int_range, help="e.g. 1-6 or 2,4,6 (default: the preset's)")
    p.add_argument(
        "--min-steps", type=nonneg_int, help="skip runs shorter than this (preset default)"
    )
    add_run_args(p)
    add_exec_args(p)
    add_cost_args(p)
    p.set_defaults(run=run)


def add_run_args(p: argparse.ArgumentParser) -> None:
    """What determines each run's result (part of its identity)."""
    p.add_argument("--data", help="token shards folder (default: the offline corpus, tokenized)")
    p.add_argument("--tokenizer", help="tokenizer folder (default: matches --data)")
    p.add_argument("--convention", help="params a ratio counts: total | kaplan | matrices")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--optimizer", choices=("muon", "adamw"), default="muon")
    p.add_argument("--lr-mult", type=positive_float, default=1.0, help="scale every LR")
    p.add_argument("--matrix-lr-mult", type=positive_float, default=1.0, help="scale Muon LR")
    p.add_argument("--adam-lr-mult", type=positive_float, default=1.0, help="scale AdamW LRs")
    p.add_argument("--evals", type=positive_int, default=10, help="validation evaluations per run")
    p.add_argument("--compile", action="store_true", help="torch.compile each model")
    add_preset_args(p)


def add_exec_args(p: argparse.ArgumentParser) -> None:
    """How runs execute (not part of their identity)."""
    g = p.add_argument_group("execution")
    g.add_argument("--project", default=".", help="project directory (default: .)")
    g.add_argument("--study", help="a label for these runs in the store")
    g.add_argument(
        "--workers", type=positive_int, default=1, help="runs at once (CPU: cores split N ways)"
    )
    g.add_argument("--nproc", type=positive_int, default=1, help="GPUs per run, through torchrun")
    g.add_argument(
        "--nodes", type=positive_int, default=1,
        help="nodes per run (torchrun's c10d rendezvous; with --executor slurm one task per node, "
        "locally that many torchrun processes on 127.0.0.1)",
    )  # fmt: skip
    g.add_argument("--executor", choices=("local", "slurm"), default="local")
    g.add_argument(
        "--launcher",
        choices=("auto", "fork", "spawn"),
        default="auto",
        help="start runs by forking a preloaded process (CPU, fast) or a new python each (auto)",
    )
    g.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    g.add_argument(
        "--core",
        type=positive_int,
        nargs="?",
        const=200,
        metavar="N",
        help="after each run, CORE with at most N examples per task (default 200)",
    )
    g.add_argument("--dry-run", action="store_true", help="print the runs, train nothing")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="also log each run (and the sweep's CORE and fit) to this W&B project "
        "(default: $MINISERIES_WANDB; needs pip install 'miniseries[wandb]')",
    )


def spec_kwargs(args) -> dict:
    """Keyword arguments of isoflop_specs / series_specs from the parsed flags."""
    from miniseries.cli.common import preset_from_args, preset_overrides
    from miniseries.cli.dry_run import plan_data
    from miniseries.config import get_preset

    preset = preset_from_args(args)  # checked, overrides applied: for the data's vocabulary
    data, tokenizer = plan_data(args, preset.vocab_size)  # a dry run needs no data
    if args.evals < 1:
        raise_user(f"--evals must be at least 1, got {args.evals}")
    return {
        "preset": get_preset(args.preset),  # the named preset: the specs apply the overrides
        "data": str(data),
        "tokenizer": str(tokenizer),
        "overrides": preset_overrides(args),
        "study": args.study,
        "convention": args.convention,
        "seed": args.seed,
        "optimizer": args.optimizer,
        "lr_mult": args.lr_mult,
        "matrix_lr_mult": args.matrix_lr_mult,
        "adam_lr_mult": args.adam_lr_mult,
        "evals": args.evals,
        "compile": args.compile,
    }


def raise_user(message: str):
    from miniseries.errors import UserError

    raise UserError(message)


def execute_from_args(args, specs) -> list[dict] | None:
    """Run the specs as the flags say; None on --dry-run. With W&B on (--wandb or
    $MINISERIES_WANDB) each run logs to it, then the CORE and fit of the sweep do."""
    from dataclasses import replace

    from miniseries.study import wandb_fit
    from miniseries.study.sweep import execute
    from miniseries.train import wandb_log

    if not specs:
        raise_user("nothing to run: every depth was skipped (lower --min-steps or raise --flops)")
    if args.dry_run:
        return None
    project = wandb_log.project_from(getattr(args, "wandb", None))
    if project:
        wandb_log.require()  # before any run starts; imported once here, forked workers have it
        specs = [replace(s, wandb=project) for s in specs]
        core_before = wandb_fit.runs_with_core(args.project)
    rows = execute(
        specs,
        args.project,
        workers=args.workers,
        fail_fast=args.fail_fast,
        progress=not args.quiet,
        core=args.core,
        executor=args.executor,
        nproc=args.nproc,
        nodes=getattr(args, "nodes", 1),
        launcher=getattr(args, "launcher", "auto"),
    )
    if project:
        wandb_fit.after_sweep(project, args.project, rows, core_before)
    return rows


def print_results(rows) -> int:
    """One line per run; exit code 1 if any failed."""
    failed = 0
    for r in rows:
        if r["status"] == "done":
            core = f", {r['core_label']} {r['core']:.4f}" if r.get("core") is not None else ""
            print(f"{r['run_id']} d{r['depth']}: val bpb {r['val_bpb']:.4f}{core}")
        else:
            failed += 1
            last = (r.get("error") or "").splitlines()[-1:] or [""]
            print(f"{r['run_id']} d{r['depth']}: {r['status']} {last[0]}")
    return 1 if failed else 0


def run(args) -> int:
    from miniseries.cli.dry_run import show_dry_run
    from miniseries.config import get_preset
    from miniseries.study.runspec import isoflop_specs

    kw = spec_kwargs(args)
    depths = args.depths or list(get_preset(args.preset).depths)
    specs = isoflop_specs(args.flops, depths, min_steps=args.min_steps, **kw)
    title = f"isoFLOP sweep: {len(specs)} runs -> {args.project}"
    if args.dry_run and specs:
        show_dry_run(specs, args, title, args.workers, args.nproc * args.nodes)
        return 0
    show_plan(specs, title)
    rows = execute_from_args(args, specs)
    return 0 if rows is None else print_results(rows)
