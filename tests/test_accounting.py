"""Analytic parameter counts and FLOPs/token against the real model."""

import subprocess
import sys

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from miniseries.accounting import flops_per_token, param_counts
from miniseries.config import CPU, CPU_V1, GPU, GPU_V2, model_config
from miniseries.train.model import GPT


@pytest.mark.parametrize(
    "preset", [CPU, CPU_V1, GPU, GPU_V2], ids=["cpu", "cpu-v1", "gpu", "gpu-v2"]
)
def test_param_counts_match_built_model(preset):
    for depth in range(1, 25):
        cfg = model_config(depth, preset)
        with torch.device("meta"):  # shapes only: a d24 gpu model would be 1.5B real floats
            model = GPT(cfg)
        counts = param_counts(cfg)
        assert sum(p.numel() for p in model.parameters()) == counts.total, depth
        assert model.wte.weight.numel() == counts.embedding
        assert model.lm_head.weight.numel() == counts.unembedding
        ves = getattr(model, "value_embeds", {})
        assert sum(e.weight.numel() for e in ves.values()) == counts.value_embeds
        assert counts.kaplan == counts.total - counts.embedding - counts.value_embeds - (
            counts.scalars
        )
        assert cfg.d_model % cfg.n_heads == 0


def test_conventions_are_ordered():
    cfg = model_config(4, CPU)
    c = param_counts(cfg)
    assert c.matrices < c.kaplan < c.total
    assert c.by_convention("kaplan") == c.matrices + c.unembedding


@pytest.mark.parametrize(
    "preset,depth",
    [(CPU_V1, 1), (CPU_V1, 3), (CPU_V1, 6), (GPU.with_overrides(seq_len=256, vocab_size=2048), 2),
     (CPU.with_overrides(window_pattern="L", lambdas=True, smear=True), 3)],
)  # fmt: skip
def test_flops_per_token_matches_flop_counter(preset, depth):
    """Forward + backward matmul FLOPs counted by PyTorch vs the formula. The MATH attention
    backend is used so the counter sees the attention matmuls (the fused CPU kernel is opaque to
    it); it computes the full T x T scores, which is what the formula counts. The last case checks
    the options' matmuls (value and smear gates; value embeddings are lookups) with full windows:
    a windowed layer's masked attention still computes T x T, which the formula, as nanochat's,
    counts as the window (tests/test_options.py checks that count by hand)."""
    cfg = model_config(depth, preset)
    torch.manual_seed(0)
    model = GPT(cfg)
    B = 2
    x = torch.randint(0, cfg.vocab_size, (B, cfg.seq_len))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x, x).backward()
    counted = counter.get_total_flops() / (B * cfg.seq_len)
    assert counted == pytest.approx(flops_per_token(cfg), rel=0.03)


def test_accounting_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import miniseries.accounting, miniseries.plan\n"
        "from miniseries.config import GPU\n"
        "from miniseries.plan import plan_for_flops\n"
        "print(plan_for_flops(1e18, GPU).depth)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "12"
