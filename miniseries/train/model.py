"""The GPT family: one integer (depth) sets the model, as in nanochat.

Architecture (nanochat's miniseries v1 GPT): token embedding -> RMSNorm -> depth x [pre-norm causal
self-attention with RoPE and QK-norm; pre-norm ReLU^2 MLP of 4x] -> RMSNorm -> untied lm_head ->
logit soft-cap 15*tanh(x/15). RMSNorm has no parameters and nothing has a bias, so every parameter
is a matrix and miniseries.accounting counts them exactly. Output projections start at zero, so
each block is the identity at init and the loss starts at ~ln(vocab).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from miniseries.config import ModelConfig

SOFTCAP = 15.0
ROPE_BASE = 10000.0


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int, base: float = ROPE_BASE):
    """cos/sin of shape [1, seq_len, 1, head_dim/2] for rotating query/key pairs."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        d = cfg.d_model
        self.c_q = nn.Linear(d, d, bias=False)
        self.c_k = nn.Linear(d, d, bias=False)
        self.c_v = nn.Linear(d, d, bias=False)
        self.c_proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # one matmul for q, k and v (three parameters, as Muon and the accounting see them)
        w = torch.cat((self.c_q.weight, self.c_k.weight, self.c_v.weight))
        q, k, v = F.linear(x, w).view(B, T, 3, self.n_heads, self.head_dim).unbind(2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q, k = rms_norm(q), rms_norm(k)  # QK-norm keeps attention logits bounded
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=False)
        self.c_proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = CausalSelfAttention(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(rms_norm(x), cos, sin)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.padded_vocab, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.lm_head = nn.Linear(cfg.d_model, cfg.padded_vocab, bias=False)
        cos, sin = rotary_tables(cfg.seq_len, cfg.head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """nanochat's init: unit-variance embedding, tiny lm_head, uniform(±sqrt(3/d)) inputs of
        each matrix, zero output projections."""
        nn.init.normal_(self.wte.weight, mean=0.0, std=1.0)
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.001)
        bound = math.sqrt(3.0) * self.cfg.d_model**-0.5
        for block in self.blocks:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(lin.weight, -bound, bound)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        loss_reduction: str = "mean",
    ) -> torch.Tensor:
        """Logits [B, T, vocab] without targets; with targets the loss (mean, or per token
        [B, T] with loss_reduction='none'; targets of -1 are ignored)."""
        T = idx.size(1)
        if T > self.cfg.seq_len:
            raise ValueError(
                f"sequence of {T} tokens exceeds the model's seq_len {self.cfg.seq_len}"
            )
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = rms_norm(self.wte(idx))
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.lm_head(rms_norm(x))[..., : self.cfg.vocab_size].float()
        logits = SOFTCAP * torch.tanh(logits / SOFTCAP)
        return logits if targets is None else self.loss(logits, targets, loss_reduction)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"):
        """Cross-entropy, targets of -1 ignored: logsumexp minus the target's logit, the same
        number as F.cross_entropy, whose backward needs no one-hot over the vocabulary (1-3% of a
        cpu-preset step)."""
        valid = targets != -1
        picked = logits.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        loss = (torch.logsumexp(logits, dim=-1) - picked) * valid
        return loss if reduction == "none" else loss.sum() / valid.sum()

    @torch.no_grad()
    def generate(
        self,
        tokens: list[int],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = 50,
        seed: int | None = None,
    ) -> list[int]:
        """Sample a continuation (no KV cache: fine for the small models this is used with)."""
        device = self.wte.weight.device
        gen = torch.Generator(device=device)
        gen.manual_seed(0 if seed is None else seed)
        ids = torch.tensor([tokens], dtype=torch.long, device=device)
        out: list[int] = []
        for _ in range(max_new_tokens):
            logits = self(ids[:, -self.cfg.seq_len :])[:, -1, :]
            if temperature <= 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                probs = F.softmax(logits, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=gen)
            ids = torch.cat([ids, nxt], dim=1)
            out.append(int(nxt))
        return out
