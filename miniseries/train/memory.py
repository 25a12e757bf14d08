"""Will a run fit in memory? An estimate from the model config, checked before anything is built.

A run that does not fit should fail in a second with the numbers, not after minutes of swapping
or an out-of-memory kill halfway through. The estimate (fp32 training, bytes):

    params x (4 weights + 4 grads + optimizer state)    AdamW keeps 8 bytes a param, Muon 4
    activations  layers x rows x seq_len x d_model x 34  what one forward keeps for the backward
    logits       rows x seq_len x padded_vocab x 4 x 3   logits, soft-capped logits, their grads

``rows`` is the number of rows in one forward pass (the device batch), not the whole step: gradient
accumulation frees activations between micro-steps. It is an estimate (allocator slack, the
framework itself and the data are not counted), good to ~2x, so ``check_fits`` refuses only a run
that clearly cannot fit. No torch at import time.
"""

from dataclasses import dataclass

from miniseries.accounting import param_counts
from miniseries.config import ModelConfig
from miniseries.errors import UserError

GIB = 1 << 30
ACTIVATION_BYTES = 34  # per layer x token x d_model, fp32 (a rule of thumb for fp32 training)
OPTIMIZER_BYTES = {"adamw": 8, "muon": 4}  # state per param: exp_avg + exp_avg_sq, or momentum


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes by kind; ``total`` is what `check_fits` compares with the memory available."""

    weights_grads: int
    optimizer: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        return self.weights_grads + self.optimizer + self.activations + self.logits

    def describe(self) -> str:
        parts = (
            ("weights+grads", self.weights_grads),
            ("optimizer", self.optimizer),
            ("activations", self.activations),
            ("logits", self.logits),
        )
        return ", ".join(f"{name} {gib(b)}" for name, b in parts)


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def estimate(
    model_cfg: ModelConfig, rows: int, seq_len: int | None = None, optimizer: str = "muon"
) -> MemoryEstimate:
    """The breakdown behind `training_memory_bytes`."""
    if optimizer not in OPTIMIZER_BYTES:
        raise UserError(f"unknown optimizer {optimizer!r}; choose one of: muon, adamw")
    if rows < 1:
        raise UserError(f"rows per forward pass must be at least 1, got {rows}")
    seq = model_cfg.seq_len if seq_len is None else seq_len
    counts = param_counts(model_cfg)
    if optimizer == "muon":  # Muon for the block matrices, AdamW for embedding and unembedding
        state = counts.matrices * 4 + (counts.embedding + counts.unembedding) * 8
    else:
        state = counts.total * 8
    tokens = rows * seq
    return MemoryEstimate(
        weights_grads=counts.total * 8,
        optimizer=state,
        activations=model_cfg.depth * tokens * model_cfg.d_model * ACTIVATION_BYTES,
        logits=tokens * model_cfg.padded_vocab * 4 * 3,
    )


def training_memory_bytes(
    model_cfg: ModelConfig, rows: int, seq_len: int | None = None, optimizer: str = "muon"
) -> int:
    """Estimated peak bytes of training ``model_cfg`` on ``rows`` rows of ``seq_len`` per pass."""
    return estimate(model_cfg, rows, seq_len, optimizer).total


def available_bytes(device: str = "cpu") -> int | None:
    """Memory free for a new run: MemAvailable on CPU, free memory of the GPU on CUDA.

    None where it cannot be known (no /proc/meminfo, MPS): then nothing is refused.
    """
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    if device != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file says kB (KiB)
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(
    bytes_needed: int | MemoryEstimate,
    available: int | None = None,
    device: str = "cpu",
    what: str = "this run",
) -> None:
    """UserError with the estimate if ``bytes_needed`` exceeds ``available`` (measured if None)."""
    if available is None:
        available = available_bytes(device)
    if available is None:
        return
    detail = ""
    if isinstance(bytes_needed, MemoryEstimate):
        detail = f" ({bytes_needed.describe()})"
        bytes_needed = bytes_needed.total
    if bytes_needed > available:
        raise UserError(
            f"{what} needs about {gib(bytes_needed)} of memory{detail} but only "
            f"{gib(available)} is available on {device}; lower --device-batch-size (activations "
            "and logits scale with it; the step size stays the same) or --seq-len, or pick a "
            "smaller --depth"
        )
