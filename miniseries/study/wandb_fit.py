"""Weights & Biases after a sweep and after ``miniseries fit``: the CORE of each run a sweep
evaluated, in that run's summary, and, for an isoFLOP sweep, one run of job type "fit" with the
laws fitted to the project's runs, as after ``miniseries fit --project`` (which logs the fit it
saves). The training runs themselves are logged by train/wandb_log.py.
"""

from pathlib import Path

from miniseries.train.wandb_log import session, wandb_id


def runs_with_core(project_dir) -> set[str]:
    """Run ids whose CORE the store already has (so a sweep logs only the CORE it adds)."""
    from miniseries.paths import store_path
    from miniseries.store.db import open_store

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
    from miniseries.laws import fit_laws
    from miniseries.store.db import open_store
    from miniseries.study.stored_fits import fit_record, runs_for_fit

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
