"""Optimizers and schedules: Muon for the hidden matrices, AdamW for embedding and unembedding.

This is nanochat's miniseries v1 recipe:

- every 2-D weight inside the transformer blocks is trained by Muon: Nesterov momentum, then the
  update is orthogonalised by 5 steps of a quintic Newton-Schulz iteration (coefficients
  (3.4445, -4.7750, 2.0315) from modded-nanogpt), scaled by sqrt(max(1, rows/cols)). Muon's
  momentum warms up 0.85 -> 0.95 over the first 300 steps. Muon's lr is not scaled with width:
  the orthogonalised update already has a width-independent spectral size.
- the token embedding (``wte``) and the unembedding (``lm_head``) are trained by AdamW with their
  own learning rates, betas (0.8, 0.95), eps 1e-10, each lr scaled by (d_model / 768) ** -0.5.

``optimizer='adamw'`` trains everything with AdamW instead (same embedding/unembedding groups, plus
one group for the block matrices) so the optimisers can be compared across a family. Its matrix lr
defaults to ``ADAMW_MATRIX_LR`` = 3e-3 at width 768, scaled by (d_model / 768) ** -0.5 like the
other AdamW groups (so 3e-3 at d768, 1.5e-2 at d32).

Every param group stores ``initial_lr``; ``set_schedule`` sets ``lr = initial_lr * multiplier``
each step (and Muon's momentum), so a schedule never drifts and resumes exactly from a checkpoint
(``load_state_dict`` restores ``initial_lr`` too: a resumed run keeps the lrs it started with).

Cost: Newton-Schulz costs ~5 * (4 r^2 c + 2 r^3) FLOPs per r x c matrix (r <= c) per step,
independent of the batch. At nanochat's 524k-token batch that is noise; at the cpu preset's
1024-token batch it is about as much as the forward+backward itself from width ~256 up.

Distributed training: the optimizers here know nothing about ranks. The trainer all-reduces
(averages) the gradients before ``step()``; every rank then holds identical gradients, parameters
and optimizer state, so every rank computes the identical update (Muon included) with no further
communication.
"""

import math
from dataclasses import dataclass, fields

import torch

from miniseries.errors import UserError

OPTIMIZERS = ("muon", "adamw")
NS_COEFFS = (3.4445, -4.7750, 2.0315)  # quintic Newton-Schulz, modded-nanogpt / nanochat
ADAMW_EPS = 1e-10
ADAMW_MATRIX_LR = 3e-3  # AdamW lr for block matrices at width lr_scale_width (optimizer='adamw')


@dataclass
class OptimConfig:
    """Learning rates and optimiser choice for one run (defaults: nanochat's v1 settings).

    ``matrix_lr`` is Muon's lr (``optimizer='muon'``) or the AdamW lr of the block matrices at
    width ``lr_scale_width`` (``optimizer='adamw'``); None means that optimizer's default (0.02 for
    Muon, ADAMW_MATRIX_LR for AdamW). Multipliers, for LR sweeps: ``lr_mult`` scales every group,
    ``matrix_lr_mult`` the block matrices (whichever optimizer), ``adam_lr_mult`` the embedding
    and unembedding. The schedule fields feed ``lr_multiplier``.
    """

    optimizer: str = "muon"
    matrix_lr: float | None = None
    embedding_lr: float = 0.3
    unembedding_lr: float = 0.004
    adam_betas: tuple[float, float] = (0.8, 0.95)
    weight_decay: float = 0.0
    lr_scale_width: int = 768
    lr_width_exponent: float = -0.5  # AdamW lrs x (d_model / lr_scale_width) ** this
    muon_momentum: tuple[float, float, int] = (0.85, 0.95, 300)  # start, end, ramp steps
    lr_mult: float = 1.0
    matrix_lr_mult: float = 1.0
    adam_lr_mult: float = 1.0
    warmup_steps: int = 0
    warmdown_ratio: float = 0.4
    final_lr_frac: float = 0.0
    # Muon's cautious weight decay for this run (the trainer scales the preset's by batch and
    # horizon: Preset.muon_weight_decay_for), cosine-decayed to 0 over the run; 0 = off
    muon_weight_decay: float = 0.0
    scalar_lr: float = 0.5  # AdamW lr of the per-layer scalars (model options lambdas, smear)

    def __post_init__(self):
        self.adam_betas = tuple(self.adam_betas)
        self.muon_momentum = tuple(self.muon_momentum)
        check_config(self)

    @property
    def resolved_matrix_lr(self) -> float:
        if self.matrix_lr is not None:
            return self.matrix_lr
        return 0.02 if self.optimizer == "muon" else ADAMW_MATRIX_LR

    @classmethod
    def from_preset(cls, preset, **overrides) -> "OptimConfig":
        """The preset's optimizer defaults, then ``overrides`` (None values are ignored).

        With ``optimizer='adamw'`` the preset's matrix_lr (a Muon lr) is not used: the matrix lr
        is ADAMW_MATRIX_LR unless ``matrix_lr`` is given.
        """
        overrides = {k: v for k, v in overrides.items() if v is not None}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise UserError(f"unknown optimizer setting(s) {unknown}; valid: {sorted(names)}")
        base = {n: getattr(preset, n) for n in names if hasattr(preset, n)}
        if overrides.get("optimizer", base.get("optimizer", "muon")) != "muon":
            base["matrix_lr"] = None
        base.update(overrides)
        return cls(**base)


def check_config(cfg: OptimConfig) -> None:
    """Raise UserError on settings that cannot train."""
    if cfg.optimizer not in OPTIMIZERS:
        raise UserError(
            f"unknown optimizer {cfg.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}"
        )
    lrs = {
        "matrix_lr": cfg.resolved_matrix_lr,
        "embedding_lr": cfg.embedding_lr,
        "unembedding_lr": cfg.unembedding_lr,
        "lr_mult": cfg.lr_mult,
        "matrix_lr_mult": cfg.matrix_lr_mult,
        "adam_lr_mult": cfg.adam_lr_mult,
        "weight_decay": cfg.weight_decay,
        "muon_weight_decay": cfg.muon_weight_decay,
        "scalar_lr": cfg.scalar_lr,
    }
    for name, value in lrs.items():
        if not math.isfinite(value) or value < 0:
            raise UserError(f"{name} must be a finite number >= 0, got {value!r}")
    if len(cfg.adam_betas) != 2 or not all(0 <= b < 1 for b in cfg.adam_betas):
        raise UserError(f"adam_betas must be two numbers in [0, 1), got {cfg.adam_betas!r}")
    if len(cfg.muon_momentum) != 3:
        raise UserError(f"muon_momentum is (start, end, ramp_steps), got {cfg.muon_momentum!r}")
    start, end, ramp = cfg.muon_momentum
    if not (0 <= start < 1 and 0 <= end < 1) or ramp < 0:
        raise UserError(
            f"muon_momentum needs start and end in [0, 1) and ramp_steps >= 0, got "
            f"{cfg.muon_momentum!r}"
        )
    if cfg.lr_scale_width <= 0:
        raise UserError(f"lr_scale_width must be a positive width, got {cfg.lr_scale_width!r}")
    check_schedule(cfg.warmup_steps, cfg.warmdown_ratio, cfg.final_lr_frac)


def check_schedule(warmup_steps: int, warmdown_ratio: float, final_lr_frac: float) -> None:
    if warmup_steps < 0:
        raise UserError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
    if not 0 <= warmdown_ratio <= 1:
        raise UserError(f"warmdown_ratio must be in [0, 1], got {warmdown_ratio!r}")
    if not 0 <= final_lr_frac <= 1:
        raise UserError(f"final_lr_frac must be in [0, 1], got {final_lr_frac!r}")


# ---------------------------------------------------------------------------------- schedules


def lr_multiplier(
    step: int,
    total_steps: int,
    warmup_steps: int,
    warmdown_ratio: float,
    final_lr_frac: float,
) -> float:
    """The lr multiplier at 0-based ``step`` of ``total_steps`` (nanochat's schedule).

    With ``W = round(warmdown_ratio * total_steps)``:

    - ``step < warmup_steps``:        ``(step + 1) / warmup_steps``  (linear warm-up from ~0)
    - ``step <= total_steps - W``:    ``1``
    - otherwise:  ``p = (total_steps - step) / W``;  ``p * 1 + (1 - p) * final_lr_frac``

    so the last step (``total_steps - 1``) runs at ``1/W + (1 - 1/W) * final_lr_frac``; the
    multiplier would reach ``final_lr_frac`` exactly at ``step = total_steps``. Warm-up wins where
    it overlaps warm-down; steps past the end are clamped to ``final_lr_frac``.
    """
    if total_steps < 1:
        raise UserError(f"total_steps must be >= 1, got {total_steps!r}")
    check_schedule(warmup_steps, warmdown_ratio, final_lr_frac)
    warmdown = round(warmdown_ratio * total_steps)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step <= total_steps - warmdown:
        return 1.0
    progress = max(0.0, (total_steps - step) / warmdown)
    return progress * 1.0 + (1 - progress) * final_lr_frac


def muon_momentum(
    step: int, start: float = 0.85, end: float = 0.95, ramp_steps: int = 300
) -> float:
    """Muon's momentum: linear from ``start`` at step 0 to ``end`` at ``ramp_steps``, then flat."""
    frac = 1.0 if ramp_steps <= 0 else min(step / ramp_steps, 1.0)
    return (1 - frac) * start + frac * end


def set_schedule(
    optimizers: list[torch.optim.Optimizer], step: int, total_steps: int, cfg: OptimConfig
) -> tuple[float, float]:
    """Set every group's lr (``initial_lr * lr_multiplier``), Muon's momentum and its cautious
    weight decay (cosine to 0) for ``step``.

    Call before each ``step()``. Returns (lr multiplier, Muon momentum) for logging.
    """
    mult = lr_multiplier(step, total_steps, cfg.warmup_steps, cfg.warmdown_ratio, cfg.final_lr_frac)
    momentum = muon_momentum(step, *cfg.muon_momentum)
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * mult
            if isinstance(opt, Muon):
                group["momentum"] = momentum
                if group.get("cautious"):
                    group["weight_decay"] = cosine_decay(cfg.muon_weight_decay, step, total_steps)
    return mult, momentum


def cosine_decay(value: float, step: int, total_steps: int) -> float:
    """``value`` at step 0, half of it at mid-run, 0 at ``total_steps`` (nanochat's wd schedule)."""
    return value * 0.5 * (1 + math.cos(math.pi * step / total_steps))


# ---------------------------------------------------------------------------------------- Muon


def zeropower_via_newtonschulz5(
    G: torch.Tensor, steps: int = 5, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Approximately orthogonalise G (..., rows, cols): U S V^T -> U S' V^T with S' near 1.

    Quintic Newton-Schulz: after scaling G by its Frobenius norm (so every singular value is <= 1)
    each step maps every singular value x to ``a x + b x^3 + c x^5``. The coefficients trade
    exactness for speed: 5 steps send any x in [0.002, 1] into about [0.68, 1.21], which is all
    Muon needs. Runs in ``dtype`` (default bfloat16 on CUDA, float32 elsewhere) and returns it.
    """
    if G.ndim < 2:
        raise ValueError(f"Newton-Schulz needs a matrix (or a batch of them), got shape {G.shape}")
    if dtype is None:
        dtype = torch.bfloat16 if G.is_cuda else torch.float32
    a, b, c = NS_COEFFS
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:  # iterate on the short side: X X^T is the smaller Gram matrix
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    shape = X.shape
    X = X.reshape(-1, *shape[-2:])  # one batch dimension, for baddbmm
    for _ in range(steps):  # B = b A + c A^2 and X = a X + B X, each one fused matmul-add
        A = X @ X.mT
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)
        X = torch.baddbmm(X, B, X, beta=a)
    X = X.reshape(shape)
    return X.mT if tall else X


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalized by Newton-Schulz, for 2-D weights only.

    Per step: ``buf = momentum * buf + (1 - momentum) * grad``; Nesterov look-ahead
    ``g = (1 - momentum) * grad + momentum * buf``; ``p -= lr * sqrt(max(1, rows/cols)) * NS(g)``.
    Optional decoupled weight decay: ``p *= 1 - lr * weight_decay`` first; ``cautious=True``
    decays only the entries where the update and the weight agree in sign (``u * p >= 0``, u the
    scaled orthogonalised update), as nanochat's Muon does. Parameters of the same shape share a
    group so their Newton-Schulz runs as one batched matmul. Distribution-agnostic: see the module
    docstring.
    """

    def __init__(
        self, params, lr=0.02, momentum=0.95, nesterov=True, ns_steps=5, weight_decay=0.0,
        cautious=False,
    ):  # fmt: skip
        params = list(params)
        for p in params:
            if p.ndim != 2:
                raise ValueError(f"Muon trains 2-D matrices only, got a parameter of {p.shape}")
        by_shape: dict[tuple[int, ...], list] = {}  # insertion order: deterministic groups
        for p in params:
            by_shape.setdefault(tuple(p.shape), []).append(p)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            ns_steps=ns_steps,
            weight_decay=weight_decay,
            cautious=cautious,
        )
        super().__init__([{"params": ps, "name": "matrix"} for ps in by_shape.values()], defaults)
        self.ns_dtype: torch.dtype | None = None  # None: bfloat16 on CUDA, float32 elsewhere

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            momentum, lr = group["momentum"], group["lr"]
            grads = [p.grad for p in params]
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            torch._foreach_lerp_(bufs, grads, 1 - momentum)
            if group["nesterov"]:
                updates = torch._foreach_lerp(grads, bufs, momentum)
            else:
                updates = bufs
            ortho = zeropower_via_newtonschulz5(
                torch.stack(updates), steps=group["ns_steps"], dtype=self.ns_dtype
            )
            rows, cols = params[0].shape
            scale = max(1.0, rows / cols) ** 0.5
            ortho = list(ortho.to(params[0].dtype).unbind(0))
            wd = group["weight_decay"]
            if wd and group.get("cautious"):
                for p, u in zip(params, ortho):
                    p.sub_(lr * wd * p * ((u * p) >= 0))
            elif wd:
                torch._foreach_mul_(params, 1 - lr * wd)
            torch._foreach_add_(params, ortho, alpha=-lr * scale)
        return loss


# -------------------------------------------------------------------------------------- build


def param_groups(model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """Split the GPT's parameters: block matrices, embedding, unembedding, and the options' value
    embeddings and scalars (each exactly once; an option that is off has an empty group)."""

    def own(*names):
        return [getattr(model, n) for n in names if hasattr(model, n)]

    groups = {
        "matrix": list(model.blocks.parameters()),
        "embedding": list(model.wte.parameters()),
        "unembedding": list(model.lm_head.parameters()),
        "value_embeds": list(getattr(model, "value_embeds", torch.nn.ModuleDict()).parameters()),
        "resid": own("resid_lambdas"),
        "x0": own("x0_lambdas"),
        "smear": [g.weight for g in own("smear_gate")] + own("smear_lambda", "backout_lambda"),
    }
    seen = {id(p) for ps in groups.values() for p in ps}
    n_total = len(list(model.parameters()))
    if len(seen) != n_total or sum(len(ps) for ps in groups.values()) != n_total:
        raise ValueError("model parameters are not exactly the groups of optim.py; update it")
    return groups


def build_optimizers(
    model: torch.nn.Module, cfg: OptimConfig, ns_dtype: torch.dtype | None = None
) -> list[torch.optim.Optimizer]:
    """[AdamW(embedding, unembedding), Muon(block matrices)] or, for 'adamw', one AdamW for all.

    AdamW lrs are ``lr * (d_model / lr_scale_width) ** lr_width_exponent`` (-0.5: nanochat's
    rule; anything else is for demonstrating a mis-scaled family); every lr is multiplied by
    ``lr_mult`` and by ``matrix_lr_mult`` or ``adam_lr_mult``. Each group stores ``initial_lr``.
    ``ns_dtype``: Muon's Newton-Schulz dtype (default: bfloat16 on CUDA, float32 elsewhere).
    """
    check_config(cfg)
    groups = param_groups(model)
    width_scale = (model.cfg.d_model / cfg.lr_scale_width) ** cfg.lr_width_exponent
    adam_lr = cfg.lr_mult * cfg.adam_lr_mult * width_scale
    matrix_lr = cfg.lr_mult * cfg.matrix_lr_mult * cfg.resolved_matrix_lr
    adam_groups = [
        {
            "params": groups["unembedding"],
            "lr": cfg.unembedding_lr * adam_lr,
            "name": "unembedding",
        },
        {"params": groups["embedding"], "lr": cfg.embedding_lr * adam_lr, "name": "embedding"},
    ]
    scalar_lr = cfg.lr_mult * cfg.adam_lr_mult * cfg.scalar_lr  # nanochat: not width-scaled
    options = [  # nanochat HEAD's groups for the options' parameters (empty when off)
        dict(name="value_embeds", lr=cfg.embedding_lr * adam_lr * 0.5),
        dict(name="resid", lr=scalar_lr * 0.01),
        dict(name="x0", lr=scalar_lr, betas=(0.96, 0.95)),
        dict(name="smear", lr=0.2 * cfg.lr_mult * cfg.adam_lr_mult),
    ]
    adam_groups += [g | {"params": groups[g["name"]]} for g in options if groups[g["name"]]]
    if cfg.optimizer == "adamw":
        adam_groups.append(
            {"params": groups["matrix"], "lr": matrix_lr * width_scale, "name": "matrix"}
        )
    on_cuda = all(p.is_cuda for g in adam_groups for p in g["params"])
    adamw = torch.optim.AdamW(
        adam_groups,
        lr=adam_groups[0]["lr"],
        betas=cfg.adam_betas,
        eps=ADAMW_EPS,
        weight_decay=cfg.weight_decay,
        fused=True if on_cuda else None,
    )
    optimizers: list[torch.optim.Optimizer] = [adamw]
    if cfg.optimizer == "muon":
        start, _, _ = cfg.muon_momentum
        cautious = cfg.muon_weight_decay > 0
        wd = cfg.muon_weight_decay if cautious else cfg.weight_decay
        muon = Muon(
            groups["matrix"], lr=matrix_lr, momentum=start, weight_decay=wd, cautious=cautious
        )
        muon.ns_dtype = ns_dtype
        optimizers.append(muon)
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return optimizers
