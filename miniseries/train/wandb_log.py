"""Optional Weights & Biases logging: a mirror of what miniseries already records, never a source.

Off unless asked for, with ``--wandb PROJECT`` (train, sweep, series, run, noise, fit) or
``$MINISERIES_WANDB`` (the flag wins). Off, nothing here runs and wandb is never imported, so a
project without the package (``pip install 'miniseries[wandb]'``) loses nothing. On:

- each training run is one W&B run: name = the run folder's name (a sweep's run_id), group = the
  study (or "single"), job type = the run's kind, config = the run's config.json; every record the
  trainer appends to log.jsonl is logged as it is, at its ``step`` (so the W&B history is the
  JSONL by construction), and the run's summary.json becomes the W&B summary. Only rank 0 logs.
  The W&B id comes from the run folder's path, so a resumed run (and a CORE evaluated after it)
  continues the same W&B run;
- after a sweep, and after ``miniseries fit --project``: study/wandb_fit.py.

W&B runs quietly (no console capture, no banner: sweep output stays readable) and every W&B run is
finished, and its service stopped, before the process moves on: a forked sweep worker leaves by
``os._exit``, which skips the atexit hook wandb would otherwise rely on. For tests and machines
without network, ``WANDB_MODE=offline`` (and ``WANDB_DIR``) is wandb's own setting; ``wandb sync``
uploads the runs later.
"""

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from miniseries.errors import UserError

ENV = "MINISERIES_WANDB"


def project_from(flag: str | None) -> str | None:
    """The W&B project to log to: the --wandb flag, else $MINISERIES_WANDB, else None (off)."""
    return flag or os.environ.get(ENV) or None


def require():
    """The wandb module, imported now; one line saying what to install when it is missing.
    Called before any run starts, so a missing package is one error, not one per run."""
    try:
        import wandb
    except ImportError:
        raise UserError(
            "W&B logging (--wandb or $MINISERIES_WANDB) needs the wandb package: "
            "pip install 'miniseries[wandb]'"
        ) from None
    return wandb


def wandb_id(run_dir: str | os.PathLike) -> str:
    """A W&B run id for a run folder: the same folder gets the same W&B run (resumes, CORE),
    the same run_id in another project gets another."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


@contextmanager
def session(
    project: str, *, name: str, group: str, job_type: str, config=None, run_id=None,
    announce: bool = False,
) -> Iterator:  # fmt: skip
    """One W&B run, finished on the way out (marked failed if the body raised), then wandb's
    service stopped unless someone else still has a run open in this process."""
    os.environ.setdefault("WANDB_SILENT", "true")  # read when wandb sets up: before init
    wandb = require()
    settings = wandb.Settings(silent=True, console="off", reinit="create_new")
    run = wandb.init(
        project=project, name=name, group=group, job_type=job_type, config=config,
        id=run_id, resume="allow" if run_id else None, settings=settings,
    )  # fmt: skip
    if announce:
        where = run.url or f"offline, in {Path(run.dir).parent} (upload: wandb sync)"
        print(f"W&B run {name}: {where}", file=sys.stderr)
    ok = False
    try:
        yield run
        ok = True
    finally:
        run.finish(exit_code=0 if ok else 1)
        if wandb.run is None:  # a run of the caller's own stays untouched
            wandb.teardown()


def training_run(cfg, config: dict, announce: bool = False):
    """The W&B session of one training run (a TrainConfig with ``wandb`` set)."""
    return session(
        cfg.wandb, name=Path(cfg.out).resolve().name, group=cfg.study or "single",
        job_type=cfg.kind, config=config, run_id=wandb_id(cfg.out), announce=announce,
    )  # fmt: skip


def log_record(run, record: dict) -> None:
    """One log.jsonl record, as it is, at its step (records of one step merge into one row)."""
    run.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])
