"""Exact parameter counts and training FLOPs for the model family. Pure Python, no torch.

Parameters by category (see miniseries/train/model.py for the architecture):
  embedding    padded_vocab x d_model (the token lookup table; costs no matmul FLOPs)
  unembedding  padded_vocab x d_model (the lm_head)
  matrices     12 x depth x d_model^2 (per layer: q, k, v, out = 4 d^2; MLP 4x up + down = 8 d^2)
RMSNorm is parameter-free and there are no biases, so in v1 these three are all the parameters.
nanochat's 2026 options (train/model.py) add:
  value_embeds  padded_vocab x d_model per value-embedding layer: embedding parameters (lookups, no
                matmul FLOPs), counted in total and not in kaplan, as nanochat counts them
  matrices      + each value gate's n_heads x 12 (they sit in the blocks and are matmuls)
  scalars       2 x depth lambdas, the smear gate's 24 x 1 and its lambda, the backout lambda
                (the smear gate is a matmul: its 24 weights count in the effective count too)

The conventions people compare when they quote "params" (and a tokens:params ratio):
  total      everything (nanochat's miniseries v1: ratio ~8)
  kaplan     matrices + unembedding: non-embedding params as in Kaplan et al. (nanochat refit ~10.5)
  matrices   transformer matrices only
  effective  FLOPs per token / 6: the FLOP-consistent count, under which C = 6 N D holds exactly

Training FLOPs per token (nanochat's convention, which we adopt): 6 x (every matmul weight, lm_head
included, embedding lookup excluded) for forward + backward, plus 12 x depth x d_model x seq_len for
the attention scores and weighted sum (2 matmuls x 2 FLOPs x 3 for fwd+bwd, counted for the full,
non-causal T x T, as nanochat and PaLM do). With a sliding window a layer's T is its window
(nanochat's estimate_flops). Elementwise work (norms, softcap, RoPE, gates' sigmoids, the
value-embedding add) is not counted.
"""

from dataclasses import dataclass

from miniseries.config import ModelConfig, check_convention


@dataclass(frozen=True)
class ParamCounts:
    embedding: int
    unembedding: int
    matrices: int
    effective: int = 0  # flops_per_token / 6 (param_counts fills it in)
    value_embeds: int = 0
    scalars: int = 0

    @property
    def total(self) -> int:
        return self.embedding + self.value_embeds + self.unembedding + self.matrices + self.scalars

    @property
    def kaplan(self) -> int:
        return self.matrices + self.unembedding

    def by_convention(self, convention: str) -> int:
        return getattr(self, check_convention(convention))

    def to_dict(self) -> dict:
        return {
            "embedding": self.embedding,
            "unembedding": self.unembedding,
            "matrices": self.matrices,
            "value_embeds": self.value_embeds,
            "scalars": self.scalars,
            "total": self.total,
            "kaplan": self.kaplan,
            "effective": self.effective,
        }


def param_counts(cfg: ModelConfig) -> ParamCounts:
    d, v = cfg.d_model, cfg.padded_vocab
    n_ve = len(cfg.value_embed_layers)
    matrices = 12 * cfg.depth * d * d + n_ve * min(12, d) * cfg.n_heads
    smear_gate = min(24, d) if cfg.smear else 0
    scalars = 2 * cfg.depth * cfg.lambdas + (smear_gate + 1 if cfg.smear else 0) + cfg.backout
    return ParamCounts(
        embedding=v * d,
        unembedding=v * d,
        matrices=matrices,
        # matmul weights (lm_head included, lookups excluded) + attention's 12 d T per layer / 6
        effective=(v * d + matrices + smear_gate) + 2 * d * sum(cfg.windows),
        value_embeds=n_ve * v * d,
        scalars=scalars,
    )


def params(cfg: ModelConfig, convention: str = "total") -> int:
    return param_counts(cfg).by_convention(convention)


def flops_per_token(cfg: ModelConfig) -> int:
    """Training (forward + backward) FLOPs per token, nanochat's convention (module docstring):
    6 x (matmul weights + attention's depth x d_model x seq_len x 2), i.e. 6 x the effective
    count."""
    return 6 * param_counts(cfg).effective
