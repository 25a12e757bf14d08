"""A run folder: the files one training run leaves, named once, and the code that reads and writes
them (the trainer, sweeps, CORE and sampling all come through here).

``runs/<id>/`` (or any ``miniseries train --out`` folder) holds:

- ``config.json``: what was trained (the TrainConfig, preset, model, plan and world size);
- ``train_config.json``: the TrainConfig a spawned or Slurm worker trains (``--config``);
- ``log.jsonl``: one record per step, eval and resume, appended while training;
- ``checkpoint.pt``: model, optimizer, loader and RNG state (tensors and plain dicts only);
- ``summary.json``: the finished run's numbers (present with the planned steps: the run is done);
- ``core.json``: CORE of the finished model;
- ``attempts.jsonl``: one line per launch by a sweep; ``<stage>.stdout/.stderr``: a sweep
  worker's output; ``.lock``: the sweep's claim on the run.

Every write goes to a temp file, then ``os.replace`` (the log is appended). Torch is imported only
inside the checkpoint functions, so reading logs and summaries stays light.
"""

import json
import os
from pathlib import Path

from miniseries.errors import UserError
from miniseries.paths import atomic_write_text

CONFIG = "config.json"
TRAIN_CONFIG = "train_config.json"
LOG = "log.jsonl"
CHECKPOINT = "checkpoint.pt"
SUMMARY = "summary.json"
CORE = "core.json"
ATTEMPTS = "attempts.jsonl"
LOCK = ".lock"


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(run_dir: str | os.PathLike, state: dict) -> None:
    """Write checkpoint.pt whole or not at all (temp file, fsync, rename): a full disk keeps the
    previous checkpoint and becomes a UserError saying so."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    tmp = path.with_name(f".{CHECKPOINT}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # a full disk surfaces from torch as RuntimeError
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        raise UserError(
            f"could not write checkpoint {path} ({reason}); the previous checkpoint is "
            "intact - free disk space and run the same command again to resume"
        ) from None


def remove_partial_checkpoints(run_dir: str | os.PathLike) -> None:
    """Delete temp files of checkpoint writes killed before their rename (never read)."""
    for stale in Path(run_dir).glob(f".{CHECKPOINT}.tmp*"):
        stale.unlink(missing_ok=True)


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / CHECKPOINT).exists()


def load_checkpoint(
    run_dir: str | os.PathLike, model_config: dict, device: str = "cpu", *, resume: bool = False
) -> dict | None:
    """The checkpoint's state, or None without one. Loaded with ``weights_only=True`` (a pickle
    that would run code is refused) and checked to hold ``model_config``'s model. ``resume``:
    the trainer's messages (start over elsewhere) instead of a reader's (use a trusted one)."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # corrupt, truncated, or a pickle we refuse to execute
        if resume:
            why, advice = type(e).__name__, "move it away to start over"
        else:
            why = f"{type(e).__name__}: it is damaged, or holds more than weights, e.g. code to run"
            advice = "use a checkpoint you trust"
        raise UserError(f"checkpoint {path} cannot be loaded safely ({why}); {advice}") from e
    if state.get("model_config") != model_config:
        if resume:
            raise UserError(
                f"checkpoint {path} is for model {state.get('model_config')}, not "
                f"{model_config}; use another --out folder"
            )
        raise UserError(f"checkpoint {path} does not match {Path(run_dir) / CONFIG}")
    return state


def load_run(run_dir: str | os.PathLike, device: str = "cpu"):
    """(model in eval mode, tokenizer) of a finished run, for sampling and CORE."""
    from miniseries.config import ModelConfig
    from miniseries.data.tokenizer import Tokenizer
    from miniseries.train.model import GPT

    run = Path(run_dir)
    if not (run / CONFIG).exists() or not (run / CHECKPOINT).exists():
        raise UserError(f"{run} is not a finished run folder (needs {CONFIG} and {CHECKPOINT})")
    config = read_config(run)
    model_cfg = ModelConfig(**config["model"])
    state = load_checkpoint(run, model_cfg.to_dict(), device)
    model = GPT(model_cfg).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    tokenizer = Tokenizer.load(config["train"]["tokenizer"], vocab_size=model_cfg.vocab_size)
    return model, tokenizer


# ---------------------------------------------------------------------------------------------
# Configs, summary, CORE


def write_config(run_dir: str | os.PathLike, config: dict) -> None:
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(config, indent=2, default=str))


def read_config(run_dir: str | os.PathLike) -> dict:
    return json.loads((Path(run_dir) / CONFIG).read_text())


def write_train_config(run_dir: str | os.PathLike, fields: dict) -> Path:
    """train_config.json: the trainer's config for a fresh process (``miniseries train
    --config PATH``); returns its path."""
    path = Path(run_dir) / TRAIN_CONFIG
    atomic_write_text(path, json.dumps(fields, indent=2))
    return path


def read_train_config(path: str | os.PathLike) -> dict:
    """The fields of a train config file (any path); a UserError if it is not a JSON object."""
    try:
        fields = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or type(e).__name__
        raise UserError(f"cannot read train config {path} ({why})") from None
    if not isinstance(fields, dict):
        raise UserError(f"train config {path} is not a JSON object of TrainConfig fields")
    return fields


def write_summary(run_dir: str | os.PathLike, summary: dict) -> None:
    atomic_write_text(Path(run_dir) / SUMMARY, json.dumps(summary, indent=2))


def read_summary(run_dir: str | os.PathLike) -> dict:
    return json.loads((Path(run_dir) / SUMMARY).read_text())


def is_finished(run_dir: str | os.PathLike, steps: int) -> bool:
    """A summary for exactly ``steps`` steps is there (a run trained to its horizon)."""
    try:
        return read_summary(run_dir).get("steps") == steps
    except (OSError, ValueError):
        return False


def write_core(run_dir: str | os.PathLike, result: dict) -> None:
    atomic_write_text(Path(run_dir) / CORE, json.dumps(result, indent=2))


def read_core(run_dir: str | os.PathLike) -> dict:
    return json.loads((Path(run_dir) / CORE).read_text())


# ---------------------------------------------------------------------------------------------
# The log and the attempts


def append_log(run_dir: str | os.PathLike, record: dict) -> None:
    with open(Path(run_dir) / LOG, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(run_dir: str | os.PathLike, tail: int | None = None) -> list[dict]:
    """The log's records in order; a line that does not parse (the torn last line of a killed
    writer) is skipped, and a missing log is empty. ``tail``: read only about the last ``tail``
    bytes (the latest records, cheap enough to poll)."""
    try:
        with open(Path(run_dir) / LOG, "rb") as f:
            start = max(0, f.seek(0, 2) - tail) if tail else 0
            f.seek(start)
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines[1:] if start else lines:  # from mid-file, the first line is a fragment
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "step" in rec:
            records.append(rec)
    return records


def trim_log(run_dir: str | os.PathLike, step: int) -> None:
    """Drop records past ``step`` (a resume writes them again) and the eval at ``step`` (it is
    redone); ``resumed_from`` records up to it stay as history."""
    if not (Path(run_dir) / LOG).exists():
        return
    keep = [
        r
        for r in read_log(run_dir)
        if r["step"] < step or (r["step"] == step and "val_bpb" not in r)
    ]
    atomic_write_text(Path(run_dir) / LOG, "".join(json.dumps(r) + "\n" for r in keep))


def add_attempt(run_dir: str | os.PathLike, record: dict) -> None:
    """One line in attempts.jsonl (a sweep writes it only under the run's lock)."""
    path = Path(run_dir) / ATTEMPTS
    old = path.read_text() if path.exists() else ""
    atomic_write_text(path, old + json.dumps(record) + "\n")


def stage_output(run_dir: str | os.PathLike, stage: str) -> tuple[Path, Path]:
    """(stdout, stderr) files of a sweep worker's stage ('train' or 'core')."""
    return Path(run_dir) / f"{stage}.stdout", Path(run_dir) / f"{stage}.stderr"
