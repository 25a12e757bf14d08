"""The model family and the presets: plain dataclasses, no torch.

A family is controlled by one integer, the depth. Width follows from it
(``d_model = aspect_ratio * (depth + width_offset)``, rounded up to a whole number of heads), heads
follow from the width (``d_model // head_dim``, at least one). nanochat's family is
``64 * depth``; the cpu preset uses ``8 * (depth + 1)`` so that consecutive depths differ by ~1.6x
in parameters instead of ~2-3x (docs/cpu-preset.md says why). A *preset* is just a set of
defaults for everything else: vocabulary, sequence length, batch size, learning rates, precision.
"""

import math
from dataclasses import asdict, dataclass, replace

from miniseries.errors import UserError

MAX_DEPTH = 64
LR_RULE_STEPS, LR_RULE_PARAMS = 300, 77_500  # the LR rule's reference run (Preset.lr_rule)
CONVENTIONS = ("total", "kaplan", "matrices", "effective")  # accounting.py says what each counts
# which LRs an LR multiplier scales -> the run setting that holds it (miniseries lr-sweep --group)
LR_GROUPS = {"all": "lr_mult", "matrix": "matrix_lr_mult", "adam": "adam_lr_mult"}


# Preset fields a run may override (command-line flags, RunSpec overrides).
PRESET_FIELDS = (
    "vocab_size",
    "seq_len",
    "batch_tokens",
    "aspect_ratio",
    "head_dim",
    "width_offset",
    "device_batch_size",
    "val_tokens",
    "threads",
    "dtype",
)
# Recipe fields a run may override too (RunSpec overrides; no flags: the recipe ablation sets them
# per cell, docs/recipe-ablation.md). Part of a run's identity like the fields above.
RECIPE_FIELDS = (
    "warmup_steps",
    "warmdown_ratio",
    "final_lr_frac",
    "muon_momentum",
    "lr_horizon_exponent",
    "lr_size_exponent",
    "lr_rule_scale",
)
# nanochat's 2026 recipe changes (docs/raise-the-line.md), each off in the v1 presets. The first six
# change the model (ModelConfig); the rest the optimizer, schedule and batch. Overridable per run.
ARCH_FIELDS = ("value_embeds", "window_pattern", "lambdas", "smear", "backout", "softcap")
OPTION_FIELDS = ARCH_FIELDS + (
    "unembedding_lr",
    "muon_weight_decay",
    "batch_exponent",
)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the shape of a GPT (and so its parameter count and FLOPs)."""

    depth: int
    d_model: int
    n_heads: int
    vocab_size: int  # the tokenizer's vocabulary; the embedding is padded up to a multiple of 64
    seq_len: int
    # nanochat 2026 options (train/model.py says what each does); the defaults are the v1 model
    value_embeds: bool = False  # a value embedding on alternating layers (the last included)
    window_pattern: str = "L"  # tiled over layers: L full context, S a quarter; last layer L
    lambdas: bool = False  # per-layer residual and x0 scalars
    smear: bool = False  # gate the previous token's embedding into each position
    backout: bool = False  # subtract a scaled mid-depth residual before the final norm
    softcap: float = 15.0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def windows(self) -> tuple[int, ...]:
        """Each layer's attention window in tokens (seq_len = full context)."""
        pattern = self.window_pattern.upper()
        short = max(1, self.seq_len // 4)
        w = [short if pattern[i % len(pattern)] == "S" else self.seq_len for i in range(self.depth)]
        w[-1] = self.seq_len
        return tuple(w)

    @property
    def value_embed_layers(self) -> tuple[int, ...]:
        """Layers with a value embedding: alternating, the last one always (nanochat's has_ve)."""
        if not self.value_embeds:
            return ()
        return tuple(i for i in range(self.depth) if i % 2 == (self.depth - 1) % 2)

    @property
    def padded_vocab(self) -> int:
        return -(-self.vocab_size // 64) * 64

    def to_dict(self) -> dict:
        """Its fields, the options left out where they are off: a v1 model keeps the dict (and so
        the run ids and checkpoints) it had before the options existed."""
        d = asdict(self)
        for name in ARCH_FIELDS:
            if d[name] == _MODEL_DEFAULTS[name]:
                d.pop(name)
        return d


_MODEL_DEFAULTS = dict(
    value_embeds=False, window_pattern="L", lambdas=False, smear=False, backout=False, softcap=15.0
)


@dataclass(frozen=True)
class Preset:
    """Defaults for one scale of work. Every field can be overridden on the command line."""

    name: str
    vocab_size: int
    seq_len: int
    batch_tokens: int  # tokens per optimizer step, over all ranks; reached by grad accumulation
    device_batch_size: int  # rows per forward pass per rank
    aspect_ratio: int  # d_model = aspect_ratio * (depth + width_offset)
    head_dim: int
    depths: tuple[int, ...]  # the family's sensible range, used by sweeps and error messages
    ratio: float  # default tokens:params ratio (under `convention`)
    convention: str  # which params the ratio counts: total | kaplan | matrices
    # optimizer (Muon for hidden matrices, AdamW for embedding / unembedding)
    matrix_lr: float = 0.02
    embedding_lr: float = 0.3
    unembedding_lr: float = 0.004
    adam_betas: tuple[float, float] = (0.8, 0.95)
    lr_scale_width: int = 768  # AdamW lrs scale as (d_model / lr_scale_width) ** -0.5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    warmdown_ratio: float = 0.4
    final_lr_frac: float = 0.0
    muon_momentum: tuple[float, float, int] = (0.85, 0.95, 300)  # start, end, ramp steps
    dtype: str = "bfloat16"  # matmuls under autocast, on CUDA and CPU alike (float32: no autocast)
    threads: int = 0  # torch threads on CPU (0 = leave torch's default)
    min_steps: int = 100  # sweeps skip runs shorter than this (too few steps to mean anything)
    val_tokens: int = 0  # tokens in the fixed validation set
    # What packing does with the tail of a cropped document: "drop" it (nanochat), or "requeue" it
    # as a new BOS-led piece. Short rows (the cpu preset) would otherwise drop ~70% of the corpus.
    remainder: str = "drop"
    width_offset: int = 0
    # The LR as a function of the run (docs/recipe-ablation.md): every LR x lr_rule_scale x
    # (steps / 300)^lr_horizon_exponent x (total params / 77.5K)^lr_size_exponent. Off (1) in the
    # v1 presets; the attribution fitted 1.54, -0.564, -0.194 on the cpu family.
    lr_rule_scale: float = 1.0
    lr_horizon_exponent: float = 0.0
    lr_size_exponent: float = 0.0
    # nanochat 2026 options (ModelConfig's fields and docs/raise-the-line.md), off in v1
    value_embeds: bool = False
    window_pattern: str = "L"
    lambdas: bool = False
    smear: bool = False
    backout: bool = False
    softcap: float = 15.0
    scalar_lr: float = 0.5  # AdamW lr of the per-layer scalars (lambdas, smear, backout)
    # Muon's cautious weight decay, cosine-decayed to 0 over the run and scaled as
    # muon_weight_decay * sqrt(B / ref_batch) * (ref_tokens / D) (nanochat's rule)
    muon_weight_decay: float = 0.0
    # the batch from the run's tokens: ref_batch * (D / ref_tokens)^batch_exponent, rounded to a
    # power of two, every LR x sqrt(B / ref_batch) (Power Lines; 0 = the fixed batch_tokens)
    batch_exponent: float = 0.0
    ref_tokens: int = 0  # D_ref of the two rules above (0: the preset's batch_tokens x 300 steps)
    ref_batch: int = 0  # B_ref (0: batch_tokens)

    def reference_batch(self) -> int:
        return self.ref_batch or self.batch_tokens

    def reference_tokens(self) -> int:
        return self.ref_tokens or LR_RULE_STEPS * self.batch_tokens

    def batch_for(self, tokens: float) -> int:
        """The batch the rule gives a run of ``tokens`` tokens (batch_tokens when it is off): a
        power of two, at least one row per forward pass."""
        if not self.batch_exponent:
            return self.batch_tokens
        b = self.reference_batch() * (tokens / self.reference_tokens()) ** self.batch_exponent
        return max(self.seq_len, 2 ** round(math.log2(b)))

    def at_batch(self, batch_tokens: int) -> "Preset":
        """This preset training ``batch_tokens``-token batches, the rules' references pinned (so
        that the new batch is not taken for B_ref)."""
        return replace(
            self,
            batch_tokens=batch_tokens,
            ref_batch=self.reference_batch(),
            ref_tokens=self.reference_tokens(),
        )

    def batch_lr_scale(self) -> float:
        """Every LR's factor for this batch under the batch rule: sqrt(B / B_ref) (1 when off)."""
        return (self.batch_tokens / self.reference_batch()) ** 0.5 if self.batch_exponent else 1.0

    def muon_weight_decay_for(self, tokens: float) -> float:
        """Muon's weight decay for a run of ``tokens`` tokens at this batch (nanochat's scaling)."""
        if not self.muon_weight_decay:
            return 0.0
        return (
            self.muon_weight_decay
            * (self.batch_tokens / self.reference_batch()) ** 0.5
            * (self.reference_tokens() / tokens)
        )

    def lr_rule(self, steps: int, params_total: float) -> float:
        """The LR multiplier the rule gives a run of ``steps`` steps and ``params_total`` params."""
        if self.lr_horizon_exponent == 0 and self.lr_size_exponent == 0:
            return self.lr_rule_scale
        return (
            self.lr_rule_scale
            * (steps / LR_RULE_STEPS) ** self.lr_horizon_exponent
            * (params_total / LR_RULE_PARAMS) ** self.lr_size_exponent
        )

    def model_config(self, depth: int) -> ModelConfig:
        return model_config(depth, self)

    def with_overrides(self, **kw) -> "Preset":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


# nanochat miniseries v1: 8xH100, 524,288-token batches of 2048-token rows.
GPU = Preset(
    name="gpu",
    vocab_size=32768,
    seq_len=2048,
    batch_tokens=524_288,
    device_batch_size=32,
    aspect_ratio=64,
    head_dim=128,
    depths=tuple(range(8, 21)),
    ratio=8.0,
    convention="total",
    dtype="bfloat16",
    min_steps=100,
    val_tokens=10 * 524_288,
)

# Tiny and step-rich: small vocab so embeddings don't dominate, narrow layers (8 per depth + 8) so
# the family reaches below width 64, small batches so every demo run gets hundreds of steps. Head
# dim 128 as in the gpu preset: every cpu model is narrower than one head, so it has a single head
# as wide as the model (head dim 8 capped QK-normed attention logits at sqrt(8) and cost the CPU
# one attention kernel per head). How these numbers were chosen: docs/cpu-preset.md.
CPU = Preset(
    name="cpu",
    vocab_size=512,
    seq_len=128,
    batch_tokens=1024,
    device_batch_size=8,
    aspect_ratio=8,
    width_offset=1,
    head_dim=128,
    depths=tuple(range(1, 9)),
    ratio=8.0,
    convention="total",
    matrix_lr=0.02,
    embedding_lr=0.3,
    unembedding_lr=0.004,
    dtype="float32",
    threads=2,
    min_steps=100,
    val_tokens=32 * 1024,
    remainder="requeue",
    # adopted by the pre-registered rule of docs/recipe-ablation.md on the raise-the-line ledger
    # (docs/raise-the-line.md): together worth x2.1 [1.9, 2.3] in compute at this scale
    value_embeds=True,
    window_pattern="SSSL",
)

# nanochat HEAD (92d63d4, July 2026) at parity where miniseries has the change (docs/raise-the-
# line.md lists each and what is not here): value embeddings, SSSL windows, lambdas, smear,
# backout, 40 warm-up steps, 65% warm-down to 5%, unembedding LR 0.008, cautious Muon weight decay
# 0.28 and the batch from the tokens, both referenced to d12 at 12 x (matrices + lm_head) tokens
# and 2^19-token batches, and the ratio 12 under that count (kaplan here). HEAD's code soft-caps
# at 15. v1 stays `gpu` (its run ids unchanged); `gpu-v1` names it too.
GPU_V2 = replace(
    GPU,
    name="gpu-v2",
    ratio=12.0,
    convention="kaplan",
    value_embeds=True,
    window_pattern="SSSL",
    lambdas=True,
    smear=True,
    backout=True,
    warmup_steps=40,
    warmdown_ratio=0.65,
    final_lr_frac=0.05,
    unembedding_lr=0.008,
    muon_weight_decay=0.28,
    batch_exponent=0.383,
    ref_batch=2**19,
    ref_tokens=1_321_210_944,  # 12 x (matrices + lm_head) of d12 (tests/test_options.py checks)
)

# v1 of the cpu preset, reachable by name: the family every result before the raise-the-line
# ledger was measured on (docs/cpu-preset.md, docs/recipe-ablation.md).
CPU_V1 = replace(CPU, name="cpu-v1", value_embeds=False, window_pattern="L")

PRESETS = {"cpu": CPU, "cpu-v1": CPU_V1, "gpu": GPU, "gpu-v2": GPU_V2}
ALIASES = {"gpu-v1": "gpu"}  # nanochat's miniseries v1 recipe, by its version


def get_preset(name: str) -> Preset:
    name = ALIASES.get(name, name)
    if name not in PRESETS:
        names = ", ".join([*PRESETS, *ALIASES])
        raise UserError(f"unknown preset {name!r}; choose one of: {names}")
    return PRESETS[name]


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise UserError(
            f"unknown parameter convention {convention!r}; choose one of: {', '.join(CONVENTIONS)}"
        )
    return convention


def check_depth(depth: int) -> int:
    if not isinstance(depth, int) or depth < 1 or depth > MAX_DEPTH:
        raise UserError(f"depth must be an integer from 1 to {MAX_DEPTH}, got {depth!r}")
    return depth


def model_config(depth: int, preset: Preset) -> ModelConfig:
    """The family rule: width from depth, heads from width."""
    check_depth(depth)
    head_dim = preset.head_dim
    width = preset.aspect_ratio * (depth + preset.width_offset)
    n_heads = max(1, -(-width // head_dim))
    d_model = n_heads * head_dim if width >= head_dim else width
    if d_model < head_dim:  # narrower than one head: a single head as wide as the model
        n_heads = 1
    check_options(preset)
    return ModelConfig(
        depth=depth,
        d_model=d_model,
        n_heads=n_heads,
        vocab_size=preset.vocab_size,
        seq_len=preset.seq_len,
        **{name: getattr(preset, name) for name in ARCH_FIELDS},
    )


def check_options(preset: Preset) -> None:
    """Raise UserError on option values that cannot build a model."""
    pattern = str(preset.window_pattern)
    if not pattern or set(pattern.upper()) - set("SL"):
        raise UserError(f"window_pattern is a string of S and L (e.g. SSSL), got {pattern!r}")
    if not (preset.softcap > 0 and math.isfinite(preset.softcap)):
        raise UserError(f"softcap must be a positive number, got {preset.softcap!r}")
    if preset.batch_exponent < 0 or preset.muon_weight_decay < 0:
        raise UserError("batch_exponent and muon_weight_decay must be >= 0")
