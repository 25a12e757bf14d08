"""Train one model of the family: the loop every other stage (sweep, series, one-knob run) calls.

Horizon from the planner (ratio, FLOPs budget, or explicit steps); batch size in tokens reached by
gradient accumulation; Muon + AdamW with a warm-up / constant / warm-down schedule; validation
bits-per-byte on a fixed packing; a JSONL log; atomic checkpoints that resume bit for bit.

Distributed: run under ``torchrun``. Every rank builds the same model from the same seed, reads its
own rows of the global row stream, and gradients are averaged across ranks before the optimizer
step, so all ranks take identical steps and a W-rank run equals one process with W x the gradient
accumulation. The averaging is torch's DistributedDataParallel: gradients travel in ~25 MB buckets
while backward is still running, and only on the last micro-step of an accumulation (``no_sync``
before it). ``grad_sync="allreduce"`` keeps the older path — one blocking all_reduce per parameter
after backward — as the reference the DDP benchmark measures against. Only rank 0 writes.
"""

import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
from rich.progress import TextColumn, TimeRemainingColumn

from miniseries.accounting import param_counts
from miniseries.config import Preset, get_preset
from miniseries.errors import UserError
from miniseries.paths import cache_dir
from miniseries.plan import Plan, plan_for_depth, plan_for_steps, plan_isoflop
from miniseries.progress import progress_bar
from miniseries.train import run_folder


@dataclass
class TrainConfig:
    """Everything one run needs. Exactly one of ratio / flops / steps sets the horizon."""

    depth: int
    out: str
    data: str  # token shards folder (miniseries data tokenize)
    tokenizer: str  # tokenizer folder (for sampling and CORE later)
    preset: str = "cpu"
    ratio: float | None = None
    flops: float | None = None
    steps: int | None = None
    convention: str | None = None
    seed: int = 0
    optimizer: str = "muon"  # muon | adamw
    lr_mult: float = 1.0  # multiplies every learning rate (LR sweeps)
    matrix_lr_mult: float = 1.0
    adam_lr_mult: float = 1.0
    lr_width_exponent: float = -0.5  # AdamW lrs x (d_model/768)^this; other values: a planted bug
    eval_every: int = 0  # 0: about `evals` times per run
    evals: int = 10
    checkpoint_every: int = 0  # 0: only at the end (and at each eval when resumable)
    resumable: bool = True  # checkpoint at every eval so a killed run can resume
    compile: bool = False
    device: str = "auto"
    grad_sync: str = "ddp"  # ddp (bucketed, overlapped) | allreduce (reference: per parameter)
    overrides: dict = field(default_factory=dict)  # Preset fields (vocab_size, seq_len, ...)
    # Labels, not the result: a W&B project to log to (None: off; see train/wandb_log.py),
    # and the run's kind and study (its W&B job type and group).
    wandb: str | None = None
    kind: str = "single"
    study: str | None = None

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """The config from its fields (a train config file); unknown or missing ones are a
        UserError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown train config field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**values)
        except TypeError as e:  # a required field is missing
            raise UserError(f"incomplete train config: {e}") from None

    def preset_config(self) -> Preset:
        """The preset this run trains with, overrides applied (a TrainConfig is a record: it is
        written to train_config.json, so it names its preset; the name is resolved here)."""
        return get_preset(self.preset).with_overrides(**self.overrides)

    def plan(self) -> Plan:
        preset = self.preset_config()
        given = [x is not None for x in (self.ratio, self.flops, self.steps)]
        if sum(given) > 1:
            raise UserError("give only one of --ratio, --flops, --steps to set the horizon")
        if self.steps is not None:
            return plan_for_steps(self.depth, self.steps, preset, self.convention)
        if self.flops is not None:
            return plan_isoflop(self.depth, self.flops, preset, self.convention)
        return plan_for_depth(self.depth, preset, self.ratio, self.convention)


class TrainingDiverged(UserError):
    pass


def pick_device(name: str) -> str:
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@contextmanager
def process_group(device: str) -> Iterator[tuple[int, int]]:
    """(rank, world) of this run: join torchrun's process group, and always leave it again.

    A gloo group still alive at exit is torn down while its threads are joinable, and the rank
    aborts ("terminate called without an active exception"; 3 of 15 2-rank runs under load). So
    every exit path destroys the group: after a clean run all ranks first meet at a barrier (none
    leaves while a peer still talks to it); after an error it is destroyed at once (a peer may be
    gone); torchrun's SIGTERM becomes SystemExit so that path runs the same cleanup. A group
    someone else created is left to them.

    torch._dynamo is imported first: importing it (the first torch.optim optimizer does) after the
    group exists leaves references to the group inside torch (seen with torch 2.13), so destroying
    it would not stop its threads.
    """
    if "RANK" not in os.environ or dist.is_initialized():
        yield rank_and_world()
        return
    import torch._dynamo  # noqa: F401  (see above: before the group, never after)

    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main_thread else None
    clean = False
    try:
        yield rank_and_world()
        clean = True
    finally:
        if previous is not None:  # None: not ours to restore (not the main thread, or set in C)
            signal.signal(signal.SIGTERM, previous)
        try:
            if clean:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def compile_model(module: torch.nn.Module, device: str) -> torch.nn.Module:
    """torch.compile as the trainer does it. Kernels persist under the miniseries cache dir, so
    each shape compiles once per machine (~15-20 s; ~2 s from the cache after). On the CPU the
    compiled graph is called through C++ rather than Python (cpp_wrapper: ~3% at the cpu preset,
    where steps take milliseconds)."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "compile"))
    return torch.compile(module, options={"cpp_wrapper": True} if device == "cpu" else None)


def compute_dtype(device: str, dtype: str) -> torch.dtype:
    """The dtype matmuls run in: the preset's (bfloat16 for the gpu presets) on CUDA and on CPU,
    float32 elsewhere (MPS). Parameters, gradients and optimizer state stay float32 throughout."""
    kind = device.split(":")[0]
    return getattr(torch, dtype) if kind in ("cuda", "cpu") else torch.float32


def autocast_for(device: str, dtype: str):
    """torch.autocast at the run's compute dtype (a no-op context at float32). A gpu-preset run on
    a CPU takes the same bf16 branch as on a GPU, so the CPU tests exercise it."""
    kind = device.split(":")[0]
    dt = compute_dtype(device, dtype)
    if dt == torch.float32:
        return torch.autocast("cpu", enabled=False)
    return torch.autocast(kind, dtype=dt)


def grad_accum_steps(preset: Preset, world: int) -> tuple[int, int]:
    """(rows per forward pass, micro-steps): rows x seq_len x world x micro = batch_tokens."""
    rows_total, rem = divmod(preset.batch_tokens, preset.seq_len)
    if rem:
        raise UserError(
            f"batch_tokens {preset.batch_tokens} must be a multiple of seq_len {preset.seq_len}"
        )
    if rows_total % world:
        raise UserError(f"{rows_total} rows per step cannot be split over {world} ranks")
    per_rank = rows_total // world
    rows = max(
        r for r in range(1, min(per_rank, preset.device_batch_size) + 1) if per_rank % r == 0
    )
    return rows, per_rank // rows


class Trainer:
    """Holds the state of one run; `run()` trains to the end (resuming if a checkpoint exists)."""

    def __init__(self, cfg: TrainConfig, progress: bool = True):
        from miniseries.data.loader import TrainLoader, val_rows
        from miniseries.data.tokenizer import Tokenizer
        from miniseries.train.memory import check_fits, estimate
        from miniseries.train.model import GPT
        from miniseries.train.optim import OptimConfig, build_optimizers

        self.cfg, self.progress = cfg, progress
        self.plan = cfg.plan()
        preset = cfg.preset_config()
        if preset.batch_exponent and preset.batch_tokens != self.plan.batch_tokens:
            preset = preset.at_batch(self.plan.batch_tokens)  # the batch rule chose the batch
        self.preset = preset
        self.device = pick_device(cfg.device)
        self.rank, self.world = rank_and_world()  # train() joined torchrun's group, if any
        if self.device == "cpu" and preset.threads:  # ranks on one machine share its cores
            local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
            torch.set_num_threads(max(1, preset.threads // local))
        self.out = Path(cfg.out)
        self.tokenizer = Tokenizer.load(cfg.tokenizer, vocab_size=preset.vocab_size)
        self.model_cfg = preset.model_config(cfg.depth)
        self.rows, self.accum = grad_accum_steps(preset, self.world)
        check_fits(  # fail before allocating anything, with the estimate
            estimate(self.model_cfg, self.rows, preset.seq_len, cfg.optimizer),
            device=self.device,
            what=f"d{cfg.depth}",
        )
        torch.manual_seed(cfg.seed)
        self.model = GPT(self.model_cfg).to(self.device)
        if cfg.grad_sync not in ("ddp", "allreduce"):
            raise UserError(f"grad_sync must be ddp or allreduce, got {cfg.grad_sync!r}")
        self.ddp = None
        if self.world > 1 and cfg.grad_sync == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
            self.ddp = DistributedDataParallel(
                self.model, device_ids=ids, gradient_as_bucket_view=True
            )
        module = self.ddp or self.model
        self.forward = compile_model(module, self.device) if cfg.compile else module
        ocfg = OptimConfig.from_preset(
            preset,
            optimizer=cfg.optimizer,
            lr_mult=cfg.lr_mult
            * preset.lr_rule(self.plan.steps, param_counts(self.model_cfg).total)
            * preset.batch_lr_scale(),
            muon_weight_decay=preset.muon_weight_decay_for(self.plan.tokens),
            matrix_lr_mult=cfg.matrix_lr_mult,
            adam_lr_mult=cfg.adam_lr_mult,
            lr_width_exponent=cfg.lr_width_exponent,
        )
        self.ocfg = ocfg
        self.optimizers = build_optimizers(self.model, ocfg, ns_dtype=compute_dtype(
            self.device, preset.dtype))  # fmt: skip
        self.loader = TrainLoader(
            cfg.data,
            self.rows,
            preset.seq_len,
            self.rank,
            self.world,
            seed=cfg.seed,
            remainder=preset.remainder,
        )
        val_tokens = preset.val_tokens or 16 * preset.seq_len
        self.val = val_rows(cfg.data, preset.seq_len, val_tokens, remainder=preset.remainder)
        self.token_bytes = self.tokenizer.token_bytes
        total = self.plan.steps
        self.eval_every = cfg.eval_every or max(1, math.ceil(total / max(1, cfg.evals)))
        self.step = 0
        self.train_s = 0.0
        self.wandb = None  # the W&B run every log record also goes to (train() sets it)
        self.tokens_per_step = preset.batch_tokens
        self.autocast = autocast_for(self.device, preset.dtype)
        self.tokens_seen = 0  # counted from the batches the loader delivered, all ranks

    # ---- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "step": self.step,
            "train_s": self.train_s,
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "loader": self.loader.state_dict(),
            "rng": torch.get_rng_state(),
            "model_config": self.model_cfg.to_dict(),
            "tokens": self.tokens_seen,
        }

    def save_checkpoint(self) -> None:
        if self.rank == 0:
            run_folder.save_checkpoint(self.out, self.state())

    def load_checkpoint(self) -> bool:
        state = run_folder.load_checkpoint(
            self.out, self.model_cfg.to_dict(), self.device, resume=True
        )
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        for opt, sd in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(sd)
        self.loader.load_state_dict(state["loader"])
        torch.set_rng_state(state["rng"].cpu())
        self.step, self.train_s = int(state["step"]), float(state["train_s"])
        self.tokens_seen = int(state.get("tokens", self.step * self.tokens_per_step))
        return True

    # ---- one optimizer step ------------------------------------------------------------------
    def train_step(self) -> float:
        # [sum of micro-step losses, tokens delivered]: one all_reduce (sum) carries both
        sums = torch.zeros(2, device=self.device, dtype=torch.float64)
        for i in range(self.accum):
            x, y = self.loader.next_batch()
            sums[1] += x.numel()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            last = i == self.accum - 1  # DDP averages gradients during the last backward only
            with self.ddp.no_sync() if self.ddp and not last else nullcontext():
                with self.autocast:
                    loss = self.forward(x, y)
                (loss / self.accum).backward()
            sums[0] += loss.detach()
        if self.world > 1:
            if self.ddp is None:  # the reference path: one blocking all_reduce per parameter
                for p in self.model.parameters():
                    dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
            dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        loss_sum, tokens = sums.tolist()
        self.tokens_seen += round(tokens)
        loss_value = loss_sum / self.world / self.accum
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"loss became {loss_value} at step {self.step} of {self.out}; the last good "
                "checkpoint is kept — lower the learning rate (--lr-mult) and rerun"
            )
        for opt in self.optimizers:
            opt.step()
        self.model.zero_grad(set_to_none=True)
        return loss_value

    def evaluate(self) -> float:
        from miniseries.train.bpb import evaluate_bpb

        with self.autocast:
            return evaluate_bpb(self.model, self.val, self.token_bytes, self.rows * 2, self.device)

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> dict:
        from miniseries.train.mfu import peak_flops
        from miniseries.train.optim import set_schedule

        t_start = time.time()
        self.out.mkdir(parents=True, exist_ok=True)
        run_folder.remove_partial_checkpoints(self.out)  # writes killed before their rename
        resumed = self.load_checkpoint()
        if self.rank == 0:
            self._write_config()
            run_folder.trim_log(self.out, self.step)  # past the checkpoint: written again
            if resumed:
                self._log({"step": self.step, "resumed_from": self.step})
        kind = self.device if self.device.startswith("cuda") else self.device.split(":")[0]
        peak, peak_source = peak_flops(kind, self.preset.threads or None)
        total = self.plan.steps
        fpt = self.plan.flops_per_token
        bar = progress_bar(
            self.progress and self.rank == 0,
            TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        val_bpb = None
        with bar:
            task = bar.add_task(
                f"[bold]d{self.cfg.depth}", total=total, completed=self.step, loss="-"
            )
            while self.step < total:
                # no eval at step 0: every model starts at ~ln(vocab), and evals cost real time
                if self.step and self.step % self.eval_every == 0:
                    val_bpb = self.evaluate()
                    self._log({"step": self.step, "val_bpb": val_bpb, **self._position()})
                lr, _ = set_schedule(self.optimizers, self.step, total, self.ocfg)
                t0 = time.perf_counter()
                loss = self.train_step()
                if self.device.startswith("cuda"):
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                self.train_s += dt
                self.step += 1
                tps = self.tokens_per_step / dt
                self._log(
                    {
                        "step": self.step,
                        "train_loss": loss,
                        "lr_mult": lr,
                        "tokens_per_s": tps,
                        "mfu": tps * fpt / peak if peak else None,
                        **self._position(),
                    }
                )
                bar.update(task, advance=1, loss=f"{loss:.3f}" if loss else "-")
                due = self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0
                if due or (self.cfg.resumable and self.step % self.eval_every == 0):
                    self.save_checkpoint()
        val_bpb = self.evaluate()
        self._log({"step": self.step, "val_bpb": val_bpb, **self._position()})
        self.save_checkpoint()
        summary = self._summary(val_bpb, time.time() - t_start, peak, peak_source)
        if self.rank == 0:
            run_folder.write_summary(self.out, summary)
        return summary

    # ---- bookkeeping -------------------------------------------------------------------------
    def _position(self) -> dict:
        tokens = self.tokens_seen
        return {"tokens": tokens, "flops": float(tokens) * self.plan.flops_per_token}

    def _log(self, record: dict) -> None:
        if self.rank == 0:
            run_folder.append_log(self.out, record)
            if self.wandb is not None:  # the same record: W&B's history is log.jsonl
                from miniseries.train.wandb_log import log_record

                log_record(self.wandb, record)

    def config(self) -> dict:
        """What was trained: config.json, and a W&B run's config."""
        return {
            "train": asdict(self.cfg),
            "preset": self.preset.to_dict(),
            "model": self.model_cfg.to_dict(),
            "plan": self.plan.to_dict(),
            "world_size": self.world,
        }

    def _write_config(self) -> None:
        run_folder.write_config(self.out, self.config())

    def _summary(self, val_bpb: float, wall_s: float, peak, peak_source: str) -> dict:
        tokens = self.tokens_seen  # counted, never steps x batch assumed
        if tokens != self.step * self.tokens_per_step:
            raise RuntimeError(
                f"{self.out}: the loader delivered {tokens:,} tokens in {self.step} steps, not "
                f"{self.step} x {self.tokens_per_step:,}; this is a bug, please report it"
            )
        tps = tokens / self.train_s if self.train_s else None
        counts = param_counts(self.model_cfg)
        return {
            "depth": self.cfg.depth,
            "preset": self.preset.name,
            "params": counts.to_dict(),
            "convention": self.plan.convention,
            "ratio": self.plan.ratio,
            "steps": self.step,
            "tokens": tokens,
            "flops": float(tokens) * self.plan.flops_per_token,
            "flops_per_token": self.plan.flops_per_token,
            "val_bpb": val_bpb,
            "wall_s": wall_s,
            "train_s": self.train_s,
            "tokens_per_s": tps,
            "mfu": tps * self.plan.flops_per_token / peak if (peak and tps) else None,
            "peak_flops": peak,
            "peak_source": peak_source,
            "device": self.device,
            "world_size": self.world,
            "loader": self.loader.stats(),
        }


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train (or resume) one run and return its summary (one rank of it under torchrun). With
    ``cfg.wandb``, rank 0 also logs to a W&B run, finished when training ends or fails."""
    with process_group(pick_device(cfg.device)):
        trainer = Trainer(cfg, progress)
        if not cfg.wandb or trainer.rank != 0:
            return trainer.run()
        from miniseries.train.wandb_log import training_run  # imports wandb: only when asked for

        with training_run(cfg, trainer.config(), announce=progress) as trainer.wandb:
            summary = trainer.run()
            trainer.wandb.summary.update(summary)
        return summary
