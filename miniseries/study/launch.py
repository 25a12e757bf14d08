"""Starting one run's process: where it runs (slots), how it starts (fork or spawn), and polling it.

Two ways to start a run's stage (training, or CORE after it), chosen by `choose_launcher`:

- **fork** (local CPU runs, one process per run): the sweep imports torch, torch._dynamo (which
  building AdamW imports, ~1.2 s) and the trainer once, then ``os.fork()``s a child per run that
  calls the stage's function (``sweep.train_run`` or ``sweep.core_run``). A run then starts in
  milliseconds instead of the ~3-6 s a fresh Python spends importing torch. GNU OpenMP is not
  fork-safe once its thread pool exists, so the parent must never run a torch op: it only
  imports. A process that imported torch before the sweep began may have used it, so ``auto``
  spawns there instead (and ``fork`` is refused).
- **spawn**: ``python -m miniseries ...`` (``train --config runs/<id>/train_config.json``, or
  ``core RUN_DIR``; under torchrun for several GPUs per run), and Slurm jobs through submitit.
  GPUs always spawn: a forked CUDA context is unusable.

Both give a child that dies with the sweep (``PR_SET_PDEATHSIG``), writes to the run's
``<stage>.stdout/.stderr``, and inherits the flock on ``runs/<id>/.lock``, so the run stays
claimed until both the sweep and its trainer are gone. Both are polled the same way:
``poll() -> exit code | None``, ``stop()``, ``error(rc) -> the tail of stderr``.
"""

import os
import signal
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from miniseries.errors import UserError
from miniseries.train.run_folder import LOCK, stage_output

ERROR_LINES = 15  # stderr lines kept in a failed run's `error`
LAUNCHERS = ("auto", "fork", "spawn")
PR_SET_PDEATHSIG = 1
# What a run imports that costs seconds; torch._dynamo is what constructing AdamW pulls in.
PRELOAD = (
    "torch",
    "torch._dynamo",
    "miniseries.train.trainer",
    "miniseries.train.model",
    "miniseries.train.optim",
    "miniseries.data.loader",
    "miniseries.data.defaults",
    "miniseries.train.bpb",
    "miniseries.train.mfu",
    "miniseries.data.tokenizer",
    "miniseries.train.run_folder",
    "miniseries.evaluate.core",
)
_native_at_preload: int | None = None  # threads Python doesn't know of, right after preload()


# ---------------------------------------------------------------------------------------------
# Where a run executes


@dataclass
class Slot:
    """Where one run executes: CPU threads, and the GPUs it may see (None: CPU)."""

    threads: int | None
    gpus: list[int] | None = None

    def env(self) -> dict:
        """Variables to set for the run (on top of the environment where it runs)."""
        env = {}
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpus))
        if self.threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        return env


def visible_gpus() -> list[int]:
    text = os.environ.get("CUDA_VISIBLE_DEVICES")
    if text is not None:
        return [int(x) for x in text.split(",") if x.strip().isdigit()]
    try:
        import torch

        return list(range(torch.cuda.device_count()))
    except ImportError:
        return []


def make_slots(workers: int, nproc: int = 1, threads: int | None = None) -> list[Slot]:
    """N slots: GPUs split into groups of nproc, or the CPU cores split N ways."""
    if workers < 1 or nproc < 1:
        raise UserError(f"--workers and --nproc must be at least 1, got {workers} and {nproc}")
    gpus = visible_gpus()
    if gpus:
        if workers * nproc > len(gpus):
            raise UserError(
                f"{workers} workers x {nproc} GPUs each needs {workers * nproc} GPUs, "
                f"{len(gpus)} visible; lower --workers or --nproc"
            )
        return [Slot(threads, gpus[i * nproc : (i + 1) * nproc]) for i in range(workers)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [Slot(threads or max(1, (cores or 1) // workers)) for _ in range(workers)]


def lock_run(run_dir: Path) -> int | None:
    """Claim a run: an fd holding an exclusive flock on runs/<id>/.lock, or None if held."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


# ---------------------------------------------------------------------------------------------
# Which launcher


def choose_launcher(launcher: str, *, torch_was_loaded: bool, slurm: bool, nproc: int, slots):
    """'fork' or 'spawn' for this sweep. ``torch_was_loaded``: torch was imported before the
    sweep began (so it may have run ops, after which a forked child can hang in OpenMP)."""
    if launcher not in LAUNCHERS:
        raise UserError(f"unknown launcher {launcher!r}; choose from {', '.join(LAUNCHERS)}")
    why_not = None
    if slurm:
        why_not = "the slurm executor submits jobs"
    elif nproc > 1 or any(s.gpus is not None for s in slots):
        why_not = "GPU runs (and torchrun) need a fresh process"
    elif not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        why_not = "forking trainers needs Linux"
    elif torch_was_loaded and _native_at_preload is None:
        why_not = "torch was imported before the sweep began (a forked child could hang)"
    if launcher == "fork" and why_not:
        raise UserError(f"launcher 'fork' is not possible here: {why_not}; use 'spawn' or 'auto'")
    return "spawn" if why_not or launcher == "spawn" else "fork"


def preload() -> None:
    """Import what every run imports, once, in the sweep (imports only: never a torch op)."""
    import importlib

    global _native_at_preload
    for name in PRELOAD:
        importlib.import_module(name)
    if _native_at_preload is None:
        _native_at_preload = _native_threads()


def fork_safe() -> bool:
    """preload() ran and no native thread appeared since: torch's OpenMP pool was never started
    here (a caller that ran torch ops between two sweeps gets spawned runs, not a hang)."""
    return _native_at_preload is not None and _native_threads() <= _native_at_preload


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task")) - threading.active_count()
    except OSError:
        return 1 << 30  # unknown: never fork


def launch(cmd, slot: Slot, run_dir: Path, name: str, lock_fd: int, how: str, **kw):
    """Start a run's stage, ``how``: 'fork' (if still `fork_safe`): a forked child calls ``job``,
    or 'spawn': a fresh ``miniseries <cmd>``, the same stage as command-line arguments.
    Keywords: ``job`` (the stage as a function, for fork), ``executor`` (submitit: a Slurm job),
    ``nproc`` > 1 (spawn under torchrun), ``close_fds`` (other runs' lock fds, closed in a forked
    child so it holds only its own)."""
    if how == "fork" and fork_safe():
        return ForkProc(kw["job"], slot, run_dir, name, lock_fd, kw.get("close_fds", ()))
    nproc, nodes, executor = kw.get("nproc", 1), kw.get("nodes", 1), kw.get("executor")
    if nodes > 1 and executor is not None:  # each Slurm node builds its torchrun command there
        return Proc(list(cmd), slot, run_dir, name, lock_fd, executor, nodes=nodes, nproc=nproc)
    if nodes > 1:  # N nodes on this machine: N torchrun processes meeting on 127.0.0.1
        endpoint = f"127.0.0.1:{free_port()}"
        argvs = [torchrun_argv(cmd, nproc, nodes, endpoint, run_dir.name) for _ in range(nodes)]
        return Proc(argvs, slot, run_dir, name, lock_fd, None)
    if nproc > 1:
        return Proc(torchrun_argv(cmd, nproc), slot, run_dir, name, lock_fd, executor)
    return Proc([sys.executable, "-m", "miniseries", *cmd], slot, run_dir, name, lock_fd, executor)


def torchrun_argv(cmd, nproc: int, nodes: int = 1, endpoint: str = "", rdzv_id: str = "run"):
    """``python -m torch.distributed.run ... -m miniseries CMD``: one node standalone, or one of
    ``nodes`` nodes meeting at ``endpoint`` (host:port) by the c10d rendezvous. Every node runs the
    same command (torchrun assigns node ranks as they join): what each host of a multi-node run,
    or each Slurm task, starts."""
    argv = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if nodes == 1:
        argv.append("--standalone")
    else:
        argv += [f"--nnodes={nodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
                 f"--rdzv_id={rdzv_id}"]  # fmt: skip
    return [*argv, "-m", "miniseries", *cmd]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Processes


class _Logs:
    """The run's stdout/stderr files for one stage, and the error text of a failed launch."""

    def __init__(self, run_dir: Path, name: str):
        self.stdout_path, self.stderr_path = stage_output(run_dir, name)
        self.offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0

    def error(self, rc: int) -> str:
        tail = stderr_tail(self.stderr_path, self.offset)
        if rc < 0:
            tail = f"killed by signal {-rc}\n{tail}".strip()
        return tail or f"exit code {rc}"


def stderr_tail(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[-ERROR_LINES:])[-2000:]


class ForkProc(_Logs):
    """A forked child of the sweep calling the stage's function (``job``)."""

    def __init__(self, job, slot: Slot, run_dir: Path, name: str, lock_fd: int, close_fds=()):
        super().__init__(run_dir, name)
        self.rc = None
        for f in (sys.stdout, sys.stderr):  # else the child inherits (and repeats) the buffers
            f.flush()
        parent = os.getpid()
        prctl = _prctl()  # looked up before fork, not in the child
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                _into_child(prctl, parent, self, slot, [f for f in close_fds if f != lock_fd])
                code = _call(job)
            except BaseException:  # never let the child return into the sweep's code
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)

    def poll(self) -> int | None:
        if self.rc is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
        return self.rc

    def stop(self) -> None:
        if self.rc is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.rc = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


def _into_child(prctl, parent: int, logs: _Logs, slot: Slot, close_fds) -> None:
    """In the forked child: die with the sweep, own stdio on the run's files, default signals,
    only this run's lock, the slot's threads."""
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the sweep died before prctl took effect
        os._exit(1)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    for fd, path, mode in (
        (0, os.devnull, os.O_RDONLY),
        (1, logs.stdout_path, flags),
        (2, logs.stderr_path, flags),
    ):
        new = os.open(path, mode, 0o644)
        os.dup2(new, fd)
        os.close(new)
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    # Fresh Python streams on fds 0-2: the sweep's may be a rich console or pytest's capture.
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
    os.environ.update(slot.env())
    if slot.threads:
        import torch  # already imported by preload(): this only sets the count

        torch.set_num_threads(slot.threads)


def _call(job) -> int:
    """The stage in the forked child, with the exit code ``miniseries`` would give: a UserError
    is one line on stderr and code 2 (anything else propagates: traceback, code 1)."""
    try:
        job()
    except UserError as e:
        print(f"miniseries: error: {e}", file=sys.stderr)
        return 2
    return 0


class Proc(_Logs):
    """Local subprocesses (one, or one per node of a multi-node run on this machine; each
    inheriting the run's lock) or a submitit job, polled the same way: done when all are, the
    first failure's exit code."""

    def __init__(self, argv, slot, run_dir: Path, name: str, lock_fd: int, executor, **node):
        super().__init__(run_dir, name)
        self.job, self.popens = None, []
        out_path, err_path = str(self.stdout_path), str(self.stderr_path)
        if executor is not None:
            if node.get("nodes", 1) > 1:
                self.job = executor.submit(
                    node_job, argv, node["nproc"], slot.env(), out_path, err_path
                )
            else:
                self.job = executor.submit(_job, argv, slot.env(), out_path, err_path)
            return
        argvs = argv if argv and isinstance(argv[0], list) else [argv]
        with open(out_path, "ab") as out, open(err_path, "ab") as err:
            for a in argvs:
                self.popens.append(subprocess.Popen(
                    a, stdout=out, stderr=err, env=os.environ | slot.env(), pass_fds=(lock_fd,),
                    preexec_fn=_die_with_parent_fn(), stdin=subprocess.DEVNULL,
                ))  # fmt: skip

    def poll(self) -> int | None:
        if self.popens:
            codes = [p.poll() for p in self.popens]
            failed = [c for c in codes if c]
            if failed:  # a failed node: the others cannot finish without it
                for p in self.popens:
                    if p.poll() is None:
                        p.terminate()
                        p.wait()
                return failed[0]
            return None if None in codes else 0
        if not self.job.done():
            return None
        try:  # a multi-node job has one result per task (node): the first failure, else 0
            return next((int(r) for r in self.job.results() if int(r)), 0)
        except Exception as e:  # the job itself failed (cancelled, node died, ...)
            with open(self.stderr_path, "a") as f:
                f.write(f"submitit job {self.job.job_id} failed: {e}\n")
            return 1

    def stop(self) -> None:
        if self.popens:
            for p in self.popens:
                p.terminate()
            for p in self.popens:
                p.wait()
        else:
            self.job.cancel(check=False)


def _die_with_parent_fn():
    """preexec_fn: the child gets SIGTERM when the sweep dies (Linux); elsewhere nothing."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the sweep died before prctl took effect
            os._exit(1)

    return preexec


def _job(argv, env, stdout, stderr) -> int:
    """What a Slurm (submitit) job runs: the same train command, on the node."""
    with open(stdout, "ab") as out, open(stderr, "ab") as err:
        return subprocess.run(argv, stdout=out, stderr=err, env=os.environ | env).returncode


RDZV_PORT = 29_400  # the c10d rendezvous port on a multi-node Slurm job's first node


def node_job(cmd, nproc: int, env, stdout, stderr) -> int:
    """What each task of a multi-node Slurm job (one task per node) runs: torchrun for its node,
    all of them meeting on the job's first host (127.0.0.1 under submitit's local executor)."""
    import submitit

    job = submitit.JobEnvironment()
    local = os.environ.get("SUBMITIT_EXECUTOR") == "local"
    host = "127.0.0.1" if local else job.hostnames[0]
    port = int(os.environ.get("MINISERIES_RDZV_PORT", RDZV_PORT))
    argv = torchrun_argv(cmd, nproc, job.num_tasks, f"{host}:{port}", str(job.job_id))
    return _job(argv, env, stdout, stderr)


def slurm_executor(project: Path, nproc: int, log, nodes: int = 1):
    try:
        import submitit
    except ImportError:
        raise UserError(
            "the slurm executor needs submitit: pip install 'miniseries[slurm]' (or submitit)"
        ) from None
    ex = submitit.AutoExecutor(folder=str(project / "slurm"))
    if ex.cluster != "slurm":
        log(f"note: no Slurm here; submitit runs each job on this machine ({ex.cluster})")
    if ex.cluster == "slurm":
        ex.update_parameters(timeout_min=24 * 60, gpus_per_node=nproc, tasks_per_node=1,
                             nodes=nodes)  # fmt: skip
    else:  # one machine: a "node" per local task, as many as the run asks for
        ex.update_parameters(timeout_min=24 * 60, gpus_per_node=nproc, tasks_per_node=nodes)
    return ex
