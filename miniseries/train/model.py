"""The GPT family: one integer (depth) sets the model, as in nanochat.

Architecture (nanochat's miniseries v1 GPT): token embedding -> RMSNorm -> depth x [pre-norm causal
self-attention with RoPE and QK-norm; pre-norm ReLU^2 MLP of 4x] -> RMSNorm -> untied lm_head ->
logit soft-cap 15*tanh(x/15). RMSNorm has no parameters and nothing has a bias, so every parameter
is a matrix and miniseries.accounting counts them exactly. Output projections start at zero, so
each block is the identity at init and the loss starts at ~ln(vocab).

nanochat's 2026 options (ModelConfig; each absent from the model when off, so a v1 model has the
parameters and state-dict keys it always had; docs/raise-the-line.md):
  value_embeds    alternating layers (the last included) add a per-token embedding to v, through a
                  gate 3 sigmoid(W x[:12]) per head (ResFormer-style value residual)
  window_pattern  "SSSL": layers attend to the last seq_len/4 tokens (S) or all (L); last layer L
  lambdas         before each block x = resid_lambda[i] x + x0_lambda[i] x0 (x0: the embedding)
  smear           x[t] += smear_lambda sigmoid(W x[t][:24]) x[t-1] after the embedding
  backout         the final norm sees x - backout_lambda x_mid (x_mid: after block depth // 2)
  softcap         the logit soft-cap (15 in v1)
Inits follow nanochat's HEAD for these parameters only; the v1 parameters keep v1's.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from miniseries.config import ModelConfig

SOFTCAP = 15.0  # v1's soft-cap (ModelConfig.softcap)
ROPE_BASE = 10000.0
VE_GATE_CHANNELS, SMEAR_CHANNELS = 12, 24  # input channels of the value and smear gates


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


def window_mask(T: int, window: int, device=None) -> torch.Tensor | None:
    """[T, T] bool: query i sees keys i - window .. i (FlashAttention's window_size=(window, 0));
    None when the window covers the context (plain causal attention)."""
    if window >= T:
        return None
    i = torch.arange(T, device=device)
    d = i[:, None] - i[None, :]
    return (d >= 0) & (d <= window)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int = 0):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.window = cfg.windows[layer]
        d = cfg.d_model
        self.c_q = nn.Linear(d, d, bias=False)
        self.c_k = nn.Linear(d, d, bias=False)
        self.c_v = nn.Linear(d, d, bias=False)
        self.c_proj = nn.Linear(d, d, bias=False)
        if layer in cfg.value_embed_layers:
            self.ve_gate = nn.Linear(min(VE_GATE_CHANNELS, d), cfg.n_heads, bias=False)
        if self.window < cfg.seq_len:  # built once; its [:T, :T] slice is the mask for any T
            self.register_buffer("mask", window_mask(cfg.seq_len, self.window), persistent=False)

    def forward(self, x, cos, sin, ve: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        # one matmul for q, k and v (three parameters, as Muon and the accounting see them)
        w = torch.cat((self.c_q.weight, self.c_k.weight, self.c_v.weight))
        q, k, v = F.linear(x, w).view(B, T, 3, self.n_heads, self.head_dim).unbind(2)
        if ve is not None:  # value residual: the token's own embedding, gated per head
            gate = 3 * torch.sigmoid(self.ve_gate(x[..., : self.ve_gate.in_features]))
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_heads, self.head_dim)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q, k = rms_norm(q), rms_norm(k)  # QK-norm keeps attention logits bounded
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if self.window >= T:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask[:T, :T])
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=False)
        self.c_proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int = 0):
        super().__init__()
        self.attn = CausalSelfAttention(cfg, layer)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, ve: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(rms_norm(x), cos, sin, ve)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.padded_vocab, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg, i) for i in range(cfg.depth)])
        self.lm_head = nn.Linear(cfg.d_model, cfg.padded_vocab, bias=False)
        if cfg.value_embeds:
            self.value_embeds = nn.ModuleDict(
                {str(i): nn.Embedding(cfg.padded_vocab, cfg.d_model)
                 for i in cfg.value_embed_layers}
            )  # fmt: skip
        if cfg.lambdas:
            self.resid_lambdas = nn.Parameter(torch.ones(cfg.depth))
            self.x0_lambdas = nn.Parameter(torch.zeros(cfg.depth))
        if cfg.smear:
            self.smear_gate = nn.Linear(min(SMEAR_CHANNELS, cfg.d_model), 1, bias=False)
            self.smear_lambda = nn.Parameter(torch.zeros(1))
        if cfg.backout:
            self.backout_lambda = nn.Parameter(torch.full((1,), 0.2))
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
            if hasattr(block.attn, "ve_gate"):  # gates start slightly above neutral
                nn.init.uniform_(block.attn.ve_gate.weight, 0.0, 0.02)
        for ve in getattr(self, "value_embeds", {}).values():
            nn.init.uniform_(ve.weight, -bound, bound)  # as c_v
        if self.cfg.lambdas:  # a stronger residual and more x0 early, weaker deep (nanochat)
            frac = torch.arange(self.cfg.depth) / max(self.cfg.depth - 1, 1)
            self.resid_lambdas.copy_(1.15 - 0.10 * frac)
            self.x0_lambdas.copy_(0.20 - 0.15 * frac)
        if self.cfg.smear:
            nn.init.zeros_(self.smear_lambda)
            nn.init.uniform_(self.smear_gate.weight, 0.0, 0.02)
        if self.cfg.backout:
            nn.init.constant_(self.backout_lambda, 0.2)

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
        cfg = self.cfg
        x = rms_norm(self.wte(idx))
        if cfg.smear and T > 1:  # the previous token's embedding, gated in
            gate = self.smear_lambda * torch.sigmoid(
                self.smear_gate(x[:, 1:, : self.smear_gate.in_features])
            )
            x = torch.cat([x[:, :1], x[:, 1:] + gate * x[:, :-1]], dim=1)
        x0, x_mid = x, None
        ves = getattr(self, "value_embeds", {})
        for i, block in enumerate(self.blocks):
            if cfg.lambdas:
                x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            x = block(x, cos, sin, ves[str(i)](idx) if str(i) in ves else None)
            if i == cfg.depth // 2:
                x_mid = x
        if cfg.backout:
            x = x - self.backout_lambda * x_mid
        logits = self.lm_head(rms_norm(x))[..., : cfg.vocab_size].float()
        logits = cfg.softcap * torch.tanh(logits / cfg.softcap)
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
