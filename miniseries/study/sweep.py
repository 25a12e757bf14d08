"""Many runs at once: isoFLOP sweeps, the miniseries, the one-knob run.

A run is described by a `RunSpec`; its identity is `store.run_id` of everything that determines its
result (depth, steps, preset + overrides, seed, optimizer, LR multipliers, data), so asking for the
same run twice - from a rerun, another study, or a second sweep started at the same time - finds
the row that is already there instead of training again.

`execute` trains each spec in its own process (one per CPU share, GPU, or group of GPUs under
torchrun; or Slurm jobs through submitit): on CPU a fork of the sweep, which imported torch once,
else ``python -m miniseries train --config runs/<id>/train_config.json`` (see study/launch.py).
Runs start longest first, so that the last minutes of a sweep are not one long run with every
other slot idle. Robustness, in order of need:

- a run is claimed with an exclusive, non-blocking ``flock`` on ``runs/<id>/.lock``; the training
  process inherits the lock, so it is held until both the sweep and its trainer are gone, and a
  second sweep skips (then waits for) a run someone else holds;
- trainers die with the sweep (Linux ``PR_SET_PDEATHSIG``): kill -9 of the sweep leaves no orphan
  writing a checkpoint, and the same command again resumes the run from its checkpoint;
- a finished run's row and curve are written in one transaction, and a finished run is never
  trained again; a failed one is recorded with the tail of its stderr and the sweep goes on.
"""

import functools
import json
import math
import os
import sys
import time
from collections import deque
from pathlib import Path

from rich.progress import TextColumn

from miniseries.errors import UserError
from miniseries.paths import atomic_write_text, runs_dir
from miniseries.progress import progress_bar
from miniseries.store.db import Store, now, open_store
from miniseries.study.launch import (
    Slot,
    choose_launcher,
    fork_safe,
    launch,
    lock_run,
    make_slots,
    preload,
    slurm_executor,
)
from miniseries.study.runspec import RunSpec
from miniseries.train import run_folder

CURVE_POINTS = 200  # train-loss points kept per run (every val_bpb point is kept)
DEFAULT_CORE_CAP = 200  # --core without a number: examples per task
POLL_S = 0.2
LOG_TAIL_BYTES = 4096  # what the progress bar reads of a running run's log, every poll


class SweepFailed(UserError):
    """A run failed and --fail-fast stopped the sweep."""


# ---------------------------------------------------------------------------------------------
# Store bookkeeping


def _plan_columns(spec: RunSpec) -> dict:
    plan = spec.plan()
    return {
        "kind": spec.kind, "study": spec.study, "budget": spec.budget, "depth": spec.depth,
        "preset": spec.preset, "d_model": plan.d_model, "params_total": plan.params_total,
        "params_kaplan": plan.params_kaplan, "params_matrices": plan.params_matrices,
        "tokens": plan.tokens, "flops": plan.flops, "steps": plan.steps, "ratio": plan.ratio,
        "lr_mult": spec.lr_mult,
    }  # fmt: skip


def register_run(store: Store, spec: RunSpec, project) -> dict:
    """The run's row, inserted as 'pending' with its planned columns if it isn't there yet."""
    rd = runs_dir(project) / spec.run_id
    config = {"spec": spec.identity(), "train": spec.train_fields(rd)}
    cols = _plan_columns(spec) | {"run_dir": str(rd), "config_json": config}
    return store.ensure_run(spec.run_id, **cols)[0]


def curve_rows(run_dir: Path, total_steps: int) -> list[dict]:
    """Curve rows from the run's log: every val_bpb point, train loss thinned to ~CURVE_POINTS."""
    stride = max(1, math.ceil(total_steps / CURVE_POINTS))
    rows: dict[int, dict] = {}
    for rec in run_folder.read_log(run_dir):
        step = int(rec["step"])  # {"step", "resumed_from"} records carry no point: skipped below
        pos = {"step": step, "tokens": rec.get("tokens"), "flops": rec.get("flops")}
        if "val_bpb" in rec:
            rows.setdefault(step, {}).update(pos, val_bpb=rec["val_bpb"])
        elif "train_loss" in rec and (step % stride == 0 or step == total_steps):
            rows.setdefault(step, {}).update(pos, train_loss=rec["train_loss"])
    return [rows[s] for s in sorted(rows)]


def record_done(store: Store, spec: RunSpec, run_dir: Path) -> None:
    """A finished run's row and curve, in one transaction."""
    s = run_folder.read_summary(run_dir)
    curve = curve_rows(run_dir, spec.steps)
    cols = ("val_bpb", "wall_s", "train_s", "tokens_per_s", "mfu", "tokens", "flops", "steps")
    with store.transaction():
        store.update_run(spec.run_id, status="done", error=None, **{k: s.get(k) for k in cols})
        store.add_curve(spec.run_id, curve)


# ---------------------------------------------------------------------------------------------
# The executor


def core_bundle_ready(bundle: str = "offline") -> Path:
    """The CORE bundle folder, or a UserError telling how to build it (never builds it here)."""
    from miniseries.evaluate.get_bundle import resolve_bundle

    return resolve_bundle(bundle, build=False)


def execute(
    specs: list[RunSpec],
    project: str | os.PathLike,
    workers: int = 1,
    fail_fast: bool = False,
    progress: bool = True,
    core: int | None = None,
    executor: str = "local",
    *,
    nproc: int = 1,
    nodes: int = 1,
    threads: int | None = None,
    core_bundle: str = "offline",
    launcher: str = "auto",
    log=print,
) -> list[dict]:
    """Train every spec not already done (resuming interrupted ones); returns their store rows.

    Raises SweepFailed on the first failure with ``fail_fast``; otherwise failures are recorded
    (status 'failed', error = the tail of stderr) and the rest go on. ``launcher``: 'fork' (CPU
    runs forked from this process after it imports torch once), 'spawn' (a fresh
    ``python -m miniseries`` per run) or 'auto' (fork where it is safe; see study/launch.py).
    """
    torch_was_loaded = "torch" in sys.modules  # before make_slots, which may import it
    if executor not in ("local", "slurm"):
        raise UserError(f"unknown executor {executor!r}; choose local or slurm")
    bundle = core_bundle_ready(core_bundle) if core else None
    if executor == "slurm":  # Slurm places the jobs: no local GPU or thread split
        slots = [Slot(threads) for _ in range(max(1, workers))]
        backend = slurm_executor(Path(project), nproc, log, nodes)
    else:
        slots, backend = make_slots(workers, nproc, threads), None
    how = choose_launcher(
        launcher, torch_was_loaded=torch_was_loaded, slurm=backend is not None,
        nproc=nproc * nodes, slots=slots,
    )  # fmt: skip
    sweep = _Sweep(specs, Path(project), slots, log, fail_fast, core, bundle, backend, nproc, how)
    sweep.nodes = nodes
    return sweep.run(progress)


class _Sweep:
    def __init__(self, specs, project, slots, log, fail_fast, core, bundle, executor, nproc, how):
        unique = {s.run_id: s for s in reversed(specs)}  # first spec of each identity wins
        self.specs = [unique[i] for i in dict.fromkeys(s.run_id for s in specs)]
        self.project, self.slots, self.log, self.fail_fast = project, slots, log, fail_fast
        self.core, self.bundle, self.executor, self.nproc = core, bundle, executor, nproc
        self.how = how  # fork | spawn
        self.nodes = 1  # nodes per training run (torchrun's c10d rendezvous when > 1)
        self.running: dict[str, tuple] = {}  # run_id -> (spec, slot, proc, lock fd, stage)
        self.counts = {"trained": 0, "already": 0, "failed": 0}
        self.train_s = 0.0
        self.flops_done = 0.0

    # -- the loop --------------------------------------------------------------------------------
    def run(self, progress: bool) -> list[dict]:
        self.t0 = time.time()
        if self.how == "fork":
            preload()  # counted in the sweep's wall time, like every run's start-up
        self.store = open_store(self.project)
        try:
            with self.store.transaction():
                for spec in self.specs:
                    register_run(self.store, spec, self.project)
            todo = [s for s in self.specs if self.store.get_run(s.run_id)["status"] != "done"]
            self.total_flops = sum(spec.plan().flops for spec in todo)
            self.bar = _Bar(len(self.specs), self.total_flops, progress)
            try:
                self._loop()
            except BaseException:
                self._stop_all()
                raise
            finally:
                self.bar.close()
            self._finish()
            return [self.store.get_run(s.run_id) for s in self.specs]
        finally:
            self.store.close()

    def _loop(self) -> None:
        longest_first = sorted(self.specs, key=RunSpec.estimated_s, reverse=True)
        queue, waiting, noted = deque(longest_first), [], set()
        while queue or waiting or self.running:
            free = [s for s in self.slots if all(r[1] is not s for r in self.running.values())]
            while free and queue:
                spec = queue.popleft()
                if not self._start(spec, free[0]):
                    waiting.append(spec)
                    if spec.run_id not in noted:
                        noted.add(spec.run_id)
                        self.bar.note(f"{spec.label()} is running elsewhere; will wait for it")
                    continue
                free = [s for s in self.slots if all(r[1] is not s for r in self.running.values())]
            for spec, slot, proc, fd, stage in list(self.running.values()):
                rc = proc.poll()
                if rc is not None:
                    self._finished(spec, slot, proc, fd, stage, rc)
            if not queue and waiting:
                queue.extend(waiting)
                waiting.clear()
            self.bar.update(self._flops_now(), self.counts)
            time.sleep(POLL_S)

    def _start(self, spec: RunSpec, slot: Slot) -> bool:
        """Claim a run and launch its next stage; False if another process holds it."""
        rd = runs_dir(self.project) / spec.run_id
        fd = lock_run(rd)
        if fd is None:
            return False
        row = self.store.get_run(spec.run_id)
        if row["status"] == "done" or run_folder.is_finished(rd, spec.steps):
            if row["status"] != "done":  # trained, but the sweep died before recording it
                record_done(self.store, spec, rd)
            if self.core and self.store.get_run(spec.run_id)["core"] is None:
                return self._launch(spec, slot, fd, "core")
            self._release(fd, spec, counted="already")
            return True
        return self._launch(spec, slot, fd, "train")

    def _launch(self, spec: RunSpec, slot: Slot, fd: int, stage: str) -> bool:
        rd = runs_dir(self.project) / spec.run_id
        how = self.how if self.how != "fork" or fork_safe() else "spawn"
        threads = slot.threads if slot.gpus is None else None
        if stage == "train":
            resumed = run_folder.has_checkpoint(rd)
            config = run_folder.write_train_config(rd, spec.train_fields(rd, threads))
            cmd = ["train", "--config", str(config), "--quiet"]
            job = functools.partial(train_run, spec, rd, threads)
            _note_attempt(rd, resumed, how)
            self.store.update_run(spec.run_id, status="running", error=None)
            if resumed:
                self.bar.note(f"resuming {spec.label()} from its checkpoint")
        else:
            cmd = ["core", str(rd), "--json", "--bundle", str(self.bundle)]
            cmd += ["--max-per-task", str(self.core)]
            job = functools.partial(core_run, rd, self.bundle, self.core)
        proc = launch(
            cmd, slot, rd, stage, fd, how, job=job, executor=self.executor,
            nproc=self.nproc if stage == "train" else 1,
            nodes=self.nodes if stage == "train" else 1,
            close_fds=[r[3] for r in self.running.values()],  # other runs' locks
        )  # fmt: skip
        self.running[spec.run_id] = (spec, slot, proc, fd, stage)
        return True

    def _finished(self, spec, slot, proc, fd, stage, rc: int) -> None:
        del self.running[spec.run_id]
        rd = runs_dir(self.project) / spec.run_id
        if rc == 0 and stage == "train":
            record_done(self.store, spec, rd)
            s = run_folder.read_summary(rd)
            self.train_s += s.get("train_s") or 0.0
            self.flops_done += s["flops"]
            self.counts["trained"] += 1
            self.bar.note(f"done {spec.label()}: val bpb {s['val_bpb']:.4f}")
            if self.core:
                self._launch(spec, slot, fd, "core")
                return
        elif rc == 0:
            _record_core(self.store, spec.run_id, rd)
        else:
            error = proc.error(rc)
            what = "CORE evaluation" if stage == "core" else "training"
            if stage == "train":
                self.store.update_run(spec.run_id, status="failed", error=error)
            else:
                self.store.update_run(spec.run_id, error=f"CORE: {error}")
            self.counts["failed"] += 1
            last = error.splitlines()[-1] if error else ""
            self.bar.note(f"FAILED {what} of {spec.label()}: {last}")
            if self.fail_fast:
                self._release(fd, spec)
                self._stop_all()
                raise SweepFailed(
                    f"{what} of {spec.label()} failed ({last}); stopped because of --fail-fast "
                    f"(see {proc.stderr_path}); fix it and rerun the same command to resume"
                )
        self._release(fd, spec)

    def _release(self, fd: int, spec: RunSpec, counted: str | None = None) -> None:
        os.close(fd)
        if counted:
            self.counts[counted] += 1

    def _stop_all(self) -> None:
        """Stop running trainers (they keep their checkpoints: rerunning resumes them)."""
        for spec, _, proc, fd, stage in list(self.running.values()):
            proc.stop()
            if stage == "train":
                self.store.update_run(spec.run_id, status="pending")
            os.close(fd)
        self.running.clear()

    def _flops_now(self) -> float:
        """FLOPs finished this session plus the progress of running runs (last log line)."""
        partial = 0.0
        for spec, _, _, _, stage in self.running.values():
            if stage == "train":
                partial += logged_flops(runs_dir(self.project) / spec.run_id)
        return self.flops_done + partial

    def _finish(self) -> None:
        wall = time.time() - self.t0
        workers = len(self.slots)
        overhead = 1 - self.train_s / (workers * wall) if self.counts["trained"] else None
        stats = {
            "finished_at": now(), "wall_s": wall, "workers": workers, "runs": len(self.specs),
            "launcher": self.how,
            "threads": self.slots[0].threads, "gpus": [s.gpus for s in self.slots],
            **self.counts, "train_s": self.train_s, "overhead": overhead,
            "run_ids": [s.run_id for s in self.specs],
        }  # fmt: skip
        self.stats = stats
        name = f"{stats['finished_at'].replace(':', '')}-{os.getpid()}.json"
        atomic_write_text(self.project / "sweeps" / name, json.dumps(stats, indent=2))
        c = self.counts
        text = (
            f"sweep: {len(self.specs)} runs ({c['trained']} trained, {c['already']} already done,"
            f" {c['failed']} failed) in {wall:.1f} s with {workers} worker(s)"
        )
        if overhead is not None:
            text += f"; sum of train time {self.train_s:.1f} s, overhead {100 * overhead:.1f}%"
        self.log(text)


def _note_attempt(rd: Path, resumed: bool, launcher: str) -> None:
    """One line per launch in the run's attempts (with the step its log had reached)."""
    latest = run_folder.read_log(rd, tail=LOG_TAIL_BYTES)
    log_step = int(latest[-1]["step"]) if latest else 0
    rec = {"started_at": now(), "pid": os.getpid(), "resumed": resumed, "log_step": log_step}
    rec["launcher"] = launcher
    run_folder.add_attempt(rd, rec)


def logged_flops(run_dir: Path) -> float:
    """The FLOPs a (running) run's log has reached so far: its latest record that has them."""
    try:
        latest = run_folder.read_log(run_dir, tail=LOG_TAIL_BYTES)
    except OSError:  # progress only: never stop the sweep for it
        return 0.0
    for rec in reversed(latest):
        if "flops" in rec:  # a {"resumed_from"} record has none
            return float(rec["flops"] or 0.0)
    return 0.0


def train_run(spec: RunSpec, run_dir: Path, threads: int | None) -> None:
    """Train (or resume) one run into its folder: what a forked worker does, and what
    ``miniseries train --config`` does with the spec's train config in a fresh process."""
    from miniseries.train.trainer import train

    run_dir.mkdir(parents=True, exist_ok=True)
    s = train(spec.train_config(run_dir, threads), progress=False)
    print(f"d{s['depth']}: val bpb {s['val_bpb']:.4f} after {s['steps']} steps -> {run_dir}")


def core_run(run_dir: Path, bundle: str, max_per_task: int | None) -> None:
    """CORE of a finished run, written to its core.json (``miniseries core RUN_DIR`` on CPU)."""
    from miniseries.evaluate.core import evaluate_run

    model, tokenizer = run_folder.load_run(run_dir, "cpu")
    evaluate_run(run_dir, model, tokenizer, bundle, max_per_task, "cpu", progress=False)


def _record_core(store: Store, rid: str, rd: Path) -> None:
    res = run_folder.read_core(rd)
    rows = [
        {"task": k, "accuracy": t["accuracy"], "centered": t["centered"], "n_examples": t["n"]}
        for k, t in res["tasks"].items()
    ]
    with store.transaction():
        store.add_core_tasks(rid, rows)
        store.update_run(rid, core=res["core"], core_label=res["label"])


class _Bar:
    """One overall progress bar: runs done, FLOPs done, ETA from measured FLOPs/s."""

    def __init__(self, runs: int, flops: float, enabled: bool):
        self.t0, self.flops = time.time(), flops
        # no refresh thread: children are forked from one thread
        self.p = progress_bar(enabled, TextColumn("{task.fields[info]}"), auto_refresh=False)
        self.task = self.p.add_task("[bold]runs", total=runs, info="")
        self.p.start()

    def update(self, flops_done: float, counts: dict) -> None:
        done = counts["trained"] + counts["already"] + counts["failed"]
        rate = flops_done / max(1e-9, time.time() - self.t0)
        left = max(0.0, self.flops - flops_done)
        eta = f"ETA {_hms(left / rate)}" if rate > 0 else "ETA -"
        info = f"FLOPs {flops_done:.3g}/{self.flops:.3g}  {eta}"
        self.p.update(self.task, completed=done, info=info)
        self.p.refresh()

    def note(self, text: str) -> None:
        """A line above the bar (on stderr when the bar is not drawn)."""
        if not self.p.disable:
            self.p.console.print(text)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        self.p.stop()


def _hms(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
