"""`miniseries train`: one model of the family, on CPU, one GPU, or many under torchrun."""

import argparse

from miniseries.cli.common import (
    add_preset_args,
    finite_float,
    nonneg_int,
    positive_float,
    positive_int,
)

HELP = """\
Train depth D of the family for a horizon set by exactly one of:
  --ratio R    R x params tokens (the miniseries run; default: the preset's ratio)
  --flops C    as many steps as C FLOPs buy (one point of an isoFLOP profile)
  --steps S    S optimizer steps
Examples:
  miniseries train --depth 4 --ratio 8 --preset cpu --out runs/d4
  torchrun --nproc_per_node=8 -m miniseries train --depth 12 --preset gpu --out runs/d12
  miniseries train --config runs/<id>/train_config.json   (what a sweep's spawned worker runs)
The run folder gets config.json, log.jsonl (one line per step), checkpoint.pt and summary.json.
Rerunning the same command resumes from the checkpoint (use --fresh to refuse an old one)."""

# flags that go with --config (not part of the run)
RUN_OPTIONS = ("config", "fresh", "quiet", "wandb")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train one depth for a ratio, a FLOPs budget or a number of steps",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--depth", type=int, help="model depth (1-64); required without --config")
    p.add_argument(
        "--out",
        help="run folder (created; resumed if it has a checkpoint); required without --config",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        help="the whole run as a TrainConfig in JSON (a sweep writes runs/<id>/train_config.json) "
        "instead of --depth, --out and the other run flags; only --fresh and --quiet go with it",
    )
    h = p.add_argument_group("horizon (one of)")
    h.add_argument("--ratio", type=positive_float, help="tokens:params ratio")
    h.add_argument("--flops", type=positive_float, help="FLOPs budget")
    h.add_argument("--steps", type=positive_int, help="optimizer steps")
    p.add_argument("--convention", help="params the ratio counts: total | kaplan | matrices")
    p.add_argument("--data", help="token shards folder (default: the offline corpus, tokenized)")
    p.add_argument("--tokenizer", help="tokenizer folder (default: matches --data)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--optimizer", choices=("muon", "adamw"), default="muon")
    p.add_argument("--lr-mult", type=positive_float, default=1.0, help="scale every LR")
    p.add_argument("--matrix-lr-mult", type=positive_float, default=1.0, help="scale Muon LR")
    p.add_argument("--adam-lr-mult", type=positive_float, default=1.0, help="scale AdamW LRs")
    p.add_argument(
        "--lr-width-exponent",
        type=finite_float,
        default=-0.5,
        help="AdamW LRs scale as (d_model/768)^this (-0.5, nanochat's rule; change only to "
        "see what a mis-scaled family does)",
    )
    p.add_argument("--evals", type=positive_int, default=10, help="validation evaluations per run")
    p.add_argument("--checkpoint-every", type=nonneg_int, default=0, help="steps (0: at each eval)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument(
        "--grad-sync",
        choices=("ddp", "allreduce"),
        default="ddp",
        help="under torchrun: ddp (bucketed, overlapped with backward; the default) or allreduce "
        "(one blocking all_reduce per parameter: the reference path benchmarks compare with)",
    )
    p.add_argument("--fresh", action="store_true", help="fail instead of resuming a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="also log the run to this W&B project (default: $MINISERIES_WANDB; needs "
        "pip install 'miniseries[wandb]')",
    )
    add_preset_args(p)
    p.set_defaults(run=run)


def config_from_args(args):
    """The TrainConfig the flags (or the --config file) describe."""
    from miniseries.cli.common import preset_from_args, preset_overrides
    from miniseries.data.defaults import resolve_data
    from miniseries.errors import UserError
    from miniseries.train.run_folder import read_train_config
    from miniseries.train.trainer import TrainConfig
    from miniseries.train.wandb_log import project_from

    if args.config is not None:
        given = _flags_given(args)
        if given:
            raise UserError(f"--config PATH holds the whole run; drop {', '.join(given)}")
        cfg = TrainConfig.from_dict(read_train_config(args.config))
        cfg.wandb = args.wandb or cfg.wandb or project_from(None)  # the flag, the file, the env
        return cfg
    if args.depth is None or args.out is None:
        raise UserError("the following arguments are required: --depth, --out (or --config)")
    preset = preset_from_args(args)
    data, tokenizer = resolve_data(args.data, args.tokenizer, preset.vocab_size)
    overrides = preset_overrides(args)
    return TrainConfig(
        depth=args.depth,
        out=args.out,
        data=str(data),
        tokenizer=str(tokenizer),
        preset=preset.name,
        ratio=args.ratio,
        flops=args.flops,
        steps=args.steps,
        convention=args.convention,
        seed=args.seed,
        optimizer=args.optimizer,
        lr_mult=args.lr_mult,
        matrix_lr_mult=args.matrix_lr_mult,
        adam_lr_mult=args.adam_lr_mult,
        lr_width_exponent=args.lr_width_exponent,
        evals=args.evals,
        checkpoint_every=args.checkpoint_every,
        compile=args.compile,
        device=args.device,
        grad_sync=args.grad_sync,
        overrides=overrides,
        wandb=project_from(args.wandb),
    )


def run(args) -> int:
    from pathlib import Path

    from miniseries.cli.common import check_device
    from miniseries.errors import UserError
    from miniseries.train.run_folder import has_checkpoint
    from miniseries.train.trainer import train

    check_device(args.device)
    cfg = config_from_args(args)
    check_device(cfg.device)  # from a --config file
    cfg.plan()  # horizon errors before anything is built
    if cfg.wandb:
        from miniseries.train.wandb_log import require

        require()  # a missing package is one line before training, not a failed run
    try:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create run folder {cfg.out} ({e.strerror}); pick another --out"
        ) from None
    if args.fresh and has_checkpoint(cfg.out):
        raise UserError(f"{cfg.out} already has a checkpoint; drop --fresh to resume it")
    s = train(cfg, progress=not args.quiet)
    if s.get("device") is not None and (s["world_size"] == 1 or _rank0()):
        mfu = f", MFU {100 * s['mfu']:.1f}%" if s.get("mfu") else ""
        print(
            f"d{s['depth']}: val bpb {s['val_bpb']:.4f} after {s['steps']} steps, "
            f"{s['tokens']:,} tokens, {s['flops']:.3g} FLOPs, {s['wall_s']:.1f} s "
            f"({s['tokens_per_s']:,.0f} tok/s{mfu}) -> {cfg.out}"
        )
    return 0


def _rank0() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _flags_given(args) -> list[str]:
    """The run flags set besides --config (those that differ from a fresh parse's defaults)."""
    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    defaults = vars(sub.choices["train"].parse_args([]))
    return [
        "--" + name.replace("_", "-")
        for name, default in defaults.items()
        if name not in RUN_OPTIONS and getattr(args, name, default) != default
    ]
