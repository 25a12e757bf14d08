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
- after a sweep: the CORE of each run it evaluated, in that run's summary, and, for an isoFLOP
  sweep, one run of job type "fit" with the laws fitted to the project's runs, as after
  ``miniseries fit --project`` (which logs the fit it saves).

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


# ---------------------------------------------------------------------------------------------
# After a sweep, and after `miniseries fit`


def runs_with_core(project_dir) -> set[str]:
    """Run ids whose CORE the store already has (so a sweep logs only the CORE it adds)."""
    from miniseries.paths import store_path
    from miniseries.store import open_store

    if not store_path(project_dir).exists():
        return set()
    with open_store(project_dir, create=False) as store:
        return {r["run_id"] for r in store.list_runs() if r.get("core") is not None}


def after_sweep(project: str, project_dir, rows: list[dict], core_before: set[str]) -> None:
    """CORE evaluated by this sweep into each run's W&B summary; for an isoFLOP sweep, the laws
    fitted to the project's finished isoFLOP runs as one "fit" run."""
    for row in rows:
        if row.get("core") is not None and row["run_id"] not in core_before:
            rd = Path(row["run_dir"])
            group = row.get("study") or "single"
            with session(project, name=rd.name, group=group, job_type=row["kind"],
                         run_id=wandb_id(rd)) as run:  # fmt: skip
                run.summary.update({"core": row["core"], "core_label": row.get("core_label")})
    studies = {r.get("study") for r in rows if r.get("kind") == "isoflop"}
    if not studies:
        return
    from miniseries.fits import fit_record, runs_for_fit
    from miniseries.laws import fit_laws
    from miniseries.store import open_store

    with open_store(project_dir, create=False) as store:
        runs = runs_for_fit(store.list_runs(kind="isoflop", status="done"))
    if runs:  # what `miniseries fit --project` fits, with its defaults (not saved in the store)
        study = next(iter(studies)) if len(studies) == 1 else None
        log_fit(project, project_dir, fit_record(fit_laws(runs), runs), study=study)


def log_fit(project: str, project_dir, record: dict, study=None, fit_id=None, figures=()) -> None:
    """One W&B run (job type "fit") with a fit record's laws and their intervals, plus the
    report's figures (PROJECT/report/*.png) and ``figures`` where they exist."""
    pngs = sorted(Path(project_dir).glob("report/*.png")) + [Path(f) for f in figures]
    config = {k: record.get(k) for k in ("convention", "n_runs", "n_bootstrap", "seed", "notes")}
    name = f"fit #{fit_id}" if fit_id is not None else "fit"
    with session(project, name=name, group=study or "single", job_type="fit",
                 config=config | {"fit_id": fit_id}) as run:  # fmt: skip
        run.summary.update(law_numbers(record))
        import wandb

        images = {f"figures/{p.stem}": wandb.Image(str(p)) for p in pngs if p.is_file()}
        if images:
            run.log(images)


def law_numbers(record: dict) -> dict:
    """a, b and D*/N* of both fitted routes with their interval bounds, flat (W&B summary keys):
    ``isoflop/a``, ``isoflop/a_lo``, ``isoflop/a_hi``, ...; absent where the fit has none."""
    out = {}

    def put(key, value, interval):
        if value is not None:
            bounds = interval or {}
            out.update({key: value, f"{key}_lo": bounds.get("lo"), f"{key}_hi": bounds.get("hi")})

    iso = record.get("isoflop") or {}
    for key, law in (("a", iso.get("n_law")), ("b", iso.get("d_law"))):
        if law:
            put(f"isoflop/{key}", law["exponent"], law["interval"])
    put("isoflop/ratio", iso.get("ratio"), iso.get("ratio_interval"))
    par = record.get("parametric") or {}
    for key in ("a", "b", "ratio"):
        put(f"parametric/{key}", par.get(key), (par.get("intervals") or {}).get(key))
    return out
