"""Exact parameter counts and training FLOPs for the model family. Pure Python, no torch.

Parameters by category (see miniseries/train/model.py for the architecture):
  embedding    padded_vocab x d_model (the token lookup table; costs no matmul FLOPs)
  unembedding  padded_vocab x d_model (the lm_head)
  matrices     12 x depth x d_model^2 (per layer: q, k, v, out = 4 d^2; MLP 4x up + down = 8 d^2)
RMSNorm is parameter-free and there are no biases, so these three are all the parameters.

The conventions people compare when they quote "params" (and a tokens:params ratio):
  total      everything (nanochat's miniseries v1: ratio ~8)
  kaplan     matrices + unembedding: non-embedding params as in Kaplan et al. (nanochat refit ~10.5)
  matrices   transformer matrices only
  effective  FLOPs per token / 6: the FLOP-consistent count, under which C = 6 N D holds exactly

Training FLOPs per token (nanochat's convention, which we adopt): 6 x (every matmul weight, lm_head
included, embedding lookup excluded) for forward + backward, plus 12 x depth x d_model x seq_len for
the attention scores and weighted sum (2 matmuls x 2 FLOPs x 3 for fwd+bwd, counted for the full,
non-causal T x T, as nanochat and PaLM do). Elementwise work (norms, softcap, RoPE) is not counted.
"""

from dataclasses import dataclass

from miniseries.config import ModelConfig, check_convention


@dataclass(frozen=True)
class ParamCounts:
    embedding: int
    unembedding: int
    matrices: int
    effective: int = 0  # flops_per_token / 6 (param_counts fills it in)

    @property
    def total(self) -> int:
        return self.embedding + self.unembedding + self.matrices

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
            "total": self.total,
            "kaplan": self.kaplan,
            "effective": self.effective,
        }


def param_counts(cfg: ModelConfig) -> ParamCounts:
    d, v = cfg.d_model, cfg.padded_vocab
    matrices = 12 * cfg.depth * d * d
    return ParamCounts(
        embedding=v * d,
        unembedding=v * d,
        matrices=matrices,
        # matmul weights (lm_head included, lookup excluded) + attention's 12 L d T / 6
        effective=(v * d + matrices) + 2 * cfg.depth * d * cfg.seq_len,
    )


def params(cfg: ModelConfig, convention: str = "total") -> int:
    return param_counts(cfg).by_convention(convention)


def flops_per_token(cfg: ModelConfig) -> int:
    """Training (forward + backward) FLOPs per token, nanochat's convention (module docstring):
    6 x (matmul weights + attention's depth x d_model x seq_len x 2), i.e. 6 x the effective
    count."""
    return 6 * param_counts(cfg).effective
