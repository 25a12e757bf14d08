"""The GPT family: shapes, init loss, determinism, sampling."""

import math

import pytest
import torch
import torch.nn.functional as F

from miniseries.config import CPU, model_config
from miniseries.train.model import GPT


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_forward_shapes_and_init_loss(depth):
    torch.manual_seed(0)
    cfg = model_config(depth, CPU)
    model = GPT(cfg)
    x = torch.randint(0, cfg.vocab_size, (3, cfg.seq_len))
    logits = model(x)
    assert logits.shape == (3, cfg.seq_len, cfg.vocab_size)
    assert torch.isfinite(logits).all()
    # zero-init output projections + tiny lm_head: the model starts uniform
    assert model(x, x).item() == pytest.approx(math.log(cfg.vocab_size), abs=0.02)
    per_token = model(x, x, loss_reduction="none")
    assert per_token.shape == x.shape


def test_softcap_bounds_logits():
    cfg = model_config(1, CPU)
    model = GPT(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(1e5)
    logits = model(torch.randint(0, cfg.vocab_size, (1, 16)))
    assert logits.abs().max() <= 15.0


def test_causal_prefix_independence():
    """Changing a later token must not change earlier logits."""
    torch.manual_seed(1)
    cfg = model_config(2, CPU)
    model = GPT(cfg)
    with torch.no_grad():  # give the zero-init projections some weight so attention matters
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x = torch.randint(0, cfg.vocab_size, (1, 32))
    y = x.clone()
    y[0, 20] = (y[0, 20] + 1) % cfg.vocab_size
    a, b = model(x), model(y)
    assert torch.allclose(a[:, :20], b[:, :20], atol=1e-5)
    assert not torch.allclose(a[:, 20:], b[:, 20:], atol=1e-5)


def test_ignore_index_and_too_long():
    cfg = model_config(1, CPU)
    model = GPT(cfg)
    x = torch.randint(0, cfg.vocab_size, (1, 8))
    t = x.clone()
    t[0, :4] = -1
    losses = model(x, t, loss_reduction="none")
    assert (losses[0, :4] == 0).all()
    with pytest.raises(ValueError, match="seq_len"):
        model(torch.zeros(1, cfg.seq_len + 1, dtype=torch.long))


def test_loss_and_its_gradient_are_cross_entropy_of_the_logits():
    """The model's loss against torch's F.cross_entropy on the logits it returns (targets of -1
    ignored), per token and as the mean, and the gradients they give."""
    torch.manual_seed(2)
    cfg = model_config(2, CPU)
    model = GPT(cfg)  # the logits are fp32 whatever the model's dtype: fp32 tolerances
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randint(0, cfg.vocab_size, (3, 24))
    t = torch.randint(0, cfg.vocab_size, (3, 24))
    t[0, :5] = t[2, 7] = -1
    logits = model(x)
    expected = F.cross_entropy(logits.flatten(0, 1), t.flatten(), ignore_index=-1, reduction="none")
    assert torch.allclose(model(x, t, loss_reduction="none").flatten(), expected, atol=1e-5)
    model(x, t).backward()
    ours = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x).flatten(0, 1), t.flatten(), ignore_index=-1).backward()
    for a, b in zip(ours, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def test_generate_is_seeded():
    cfg = model_config(1, CPU)
    model = GPT(cfg)
    a = model.generate([1, 2, 3], 10, seed=7)
    b = model.generate([1, 2, 3], 10, seed=7)
    assert a == b and len(a) == 10 and all(0 <= t < cfg.vocab_size for t in a)
    greedy = model.generate([1, 2, 3], 5, temperature=0)
    assert len(greedy) == 5
