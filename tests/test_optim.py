"""Muon + AdamW, Newton-Schulz, schedules, and exact resume."""

import io
import math

import pytest
import torch

from miniseries.config import CPU
from miniseries.errors import UserError
from miniseries.train.model import GPT
from miniseries.train.optim import (
    ADAMW_MATRIX_LR,
    NS_COEFFS,
    Muon,
    OptimConfig,
    build_optimizers,
    lr_multiplier,
    muon_momentum,
    set_schedule,
    zeropower_via_newtonschulz5,
)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is as fast, and far faster when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ns_scalar(x: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """What Newton-Schulz does to each (normalised) singular value."""
    a, b, c = NS_COEFFS
    for _ in range(steps):
        x = a * x + b * x**3 + c * x**5
    return x


# ------------------------------------------------------------------------------ Newton-Schulz


def test_newton_schulz_acts_on_singular_values_only():
    """NS(U S V^T) = U p(S / ||S||_F) V^T, p = the quintic applied 5 times (float64 answer)."""
    g = torch.Generator().manual_seed(0)
    for rows, cols in [(12, 12), (8, 20), (20, 8)]:
        k = min(rows, cols)
        U, _ = torch.linalg.qr(torch.randn(rows, k, generator=g, dtype=torch.float64))
        V, _ = torch.linalg.qr(torch.randn(cols, k, generator=g, dtype=torch.float64))
        s = torch.logspace(-3, 0, k, dtype=torch.float64)  # spread from 1e-3 to 1
        G = U @ torch.diag(s) @ V.T
        got = zeropower_via_newtonschulz5(G, dtype=torch.float64)
        want = U @ torch.diag(ns_scalar(s / s.norm())) @ V.T
        assert torch.allclose(got, want, atol=1e-6), (rows, cols)


def test_newton_schulz_scalar_map_band():
    """Justifies the band: 5 quintic steps send every x in [0.002, 1] into [0.68, 1.21].
    Below ~0.0017 a value is only multiplied by ~a^5 = 485, so it stays small."""
    x = torch.linspace(0.002, 1.0, 200_001, dtype=torch.float64)
    y = ns_scalar(x)
    assert 0.68 < y.min() < 0.69 and 1.20 < y.max() < 1.21
    assert ns_scalar(torch.tensor(0.001, dtype=torch.float64)) < 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_newton_schulz_random_matrices_in_band(dtype):
    """Random rectangular matrices (the MLP's 4:1 shapes, and 3:4) keep their smallest normalised
    singular value well above 0.002 (Marchenko-Pastur), so NS output lies in [0.6, 1.25].
    Measured here: float32 [0.682, 1.134], bfloat16 [0.671, 1.145]."""
    g = torch.Generator().manual_seed(1)
    for shape in [(32, 128), (128, 32), (64, 256), (96, 128)]:
        for _ in range(3):
            G = torch.randn(*shape, generator=g)
            out = zeropower_via_newtonschulz5(G, dtype=dtype)
            assert out.dtype == dtype and out.shape == G.shape
            sv = torch.linalg.svdvals(out.float())
            assert 0.6 <= sv.min() and sv.max() <= 1.25, (shape, dtype, sv.min(), sv.max())


def test_newton_schulz_default_dtype_and_batching():
    g = torch.Generator().manual_seed(2)
    G = torch.randn(3, 16, 48, generator=g)
    out = zeropower_via_newtonschulz5(G)
    assert out.dtype == torch.float32  # CPU default
    for i in range(3):
        assert torch.allclose(out[i], zeropower_via_newtonschulz5(G[i]), atol=1e-5)
    # tall input is handled by transposing: NS(G^T) = NS(G)^T
    assert torch.allclose(zeropower_via_newtonschulz5(G[0].T), out[0].T, atol=1e-5)
    with pytest.raises(ValueError):
        zeropower_via_newtonschulz5(torch.ones(5))


# -------------------------------------------------------------------------------------- Muon


def test_muon_first_steps_match_hand_computation():
    """Step 1 from a zero buffer: the Nesterov update is a multiple of g, and NS ignores scale,
    so p1 = p0 - lr * sqrt(rows/cols) * NS(g). Step 2 follows the written recurrences."""
    g = torch.Generator().manual_seed(3)
    p = torch.nn.Parameter(torch.randn(64, 16, generator=g))  # tall: scale sqrt(4) = 2
    p0 = p.detach().clone()
    lr, m = 0.05, 0.9
    opt = Muon([p], lr=lr, momentum=m)
    g1, g2 = torch.randn(64, 16, generator=g), torch.randn(64, 16, generator=g)
    p.grad = g1.clone()
    opt.step()
    p1 = p0 - lr * 2 * zeropower_via_newtonschulz5(g1)
    assert torch.allclose(p.detach(), p1, atol=1e-6)
    p.grad = g2.clone()
    opt.step()
    buf = m * (1 - m) * g1 + (1 - m) * g2
    upd = (1 - m) * g2 + m * buf
    assert torch.allclose(p.detach(), p1 - lr * 2 * zeropower_via_newtonschulz5(upd), atol=1e-6)


def test_muon_wide_matrix_is_not_upscaled_and_weight_decay_is_decoupled():
    p = torch.nn.Parameter(torch.full((8, 32), 2.0))
    opt = Muon([p], lr=0.1, momentum=0.95, weight_decay=0.5)
    p.grad = torch.zeros_like(p)  # NS(0) = 0: only the decay acts
    opt.step()
    assert torch.equal(p.detach(), torch.full((8, 32), 2.0 * (1 - 0.1 * 0.5)))
    with pytest.raises(ValueError):
        Muon([torch.nn.Parameter(torch.ones(4))])


# --------------------------------------------------------------------------------- schedules


def test_lr_schedule_every_step_of_small_example():
    total, warmup, ratio, final = 20, 3, 0.4, 0.1  # warm-down W = 8 steps: 13..19
    want = [1 / 3, 2 / 3, 1.0] + [1.0] * 10
    want += [(20 - s) / 8 + (1 - (20 - s) / 8) * final for s in range(13, 20)]
    got = [lr_multiplier(s, total, warmup, ratio, final) for s in range(total)]
    assert got == pytest.approx(want, abs=1e-12)
    assert got[12] == 1.0 and got[13] == pytest.approx(0.8875) and got[19] == pytest.approx(0.2125)
    # warm-down is strictly decreasing and never below final_lr_frac
    assert all(a > b for a, b in zip(got[12:], got[13:]))
    assert lr_multiplier(25, total, warmup, ratio, final) == pytest.approx(final)  # clamped


def test_lr_schedule_nanochat_defaults_and_edges():
    # no warm-up, 40% warm-down to 0 over 100 steps: flat to step 60, then 40/40 ... 1/40
    got = [lr_multiplier(s, 100, 0, 0.4, 0.0) for s in range(100)]
    assert got[:61] == [1.0] * 61
    assert got[61:] == pytest.approx([(100 - s) / 40 for s in range(61, 100)])
    assert [lr_multiplier(s, 7, 0, 0.0, 0.0) for s in range(7)] == [1.0] * 7
    for bad in [
        dict(total_steps=0),
        dict(warmup_steps=-1),
        dict(warmdown_ratio=1.5),
        dict(final_lr_frac=-0.1),
    ]:
        kw = dict(step=0, total_steps=10, warmup_steps=0, warmdown_ratio=0.4, final_lr_frac=0.0)
        with pytest.raises(UserError):
            lr_multiplier(**{**kw, **bad})


def test_muon_momentum_warmup():
    assert muon_momentum(0) == pytest.approx(0.85)
    assert muon_momentum(150) == pytest.approx(0.90)
    assert muon_momentum(300) == pytest.approx(0.95)
    assert muon_momentum(5000) == pytest.approx(0.95)
    assert muon_momentum(30, 0.5, 0.9, 60) == pytest.approx(0.7)
    assert muon_momentum(0, 0.5, 0.9, 0) == pytest.approx(0.9)


# ------------------------------------------------------------------------------------ build


TINY = CPU.with_overrides(seq_len=32)  # short rows keep the training tests fast


def tiny_gpt(depth: int = 1, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(TINY.model_config(depth))


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_every_parameter_in_exactly_one_group(optimizer):
    model = tiny_gpt(depth=2)
    opts = build_optimizers(model, OptimConfig.from_preset(CPU, optimizer=optimizer))
    ids = [id(p) for o in opts for g in o.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    muon = [o for o in opts if isinstance(o, Muon)]
    assert len(muon) == (1 if optimizer == "muon" else 0)
    if muon:
        muon_ids = {id(p) for g in muon[0].param_groups for p in g["params"]}
        assert muon_ids == {id(p) for p in model.blocks.parameters()}
    for o in opts:
        for g in o.param_groups:
            assert g["initial_lr"] == g["lr"]


def test_learning_rates_scale_with_width_and_multipliers():
    model = tiny_gpt(depth=2)
    scale = (model.cfg.d_model / 768) ** -0.5
    cfg = OptimConfig.from_preset(CPU, lr_mult=2.0, adam_lr_mult=0.5, matrix_lr_mult=3.0)
    adamw, muon = build_optimizers(model, cfg)
    lrs = {g["name"]: g["lr"] for g in adamw.param_groups}
    assert lrs["unembedding"] == pytest.approx(0.004 * scale * 2.0 * 0.5)
    assert lrs["embedding"] == pytest.approx(0.3 * scale * 2.0 * 0.5)
    assert adamw.defaults["eps"] == 1e-10 and adamw.defaults["betas"] == (0.8, 0.95)
    assert all(g["lr"] == pytest.approx(0.02 * 2.0 * 3.0) for g in muon.param_groups)  # no width
    (adam_only,) = build_optimizers(model, OptimConfig.from_preset(CPU, optimizer="adamw"))
    lrs = {g["name"]: g["lr"] for g in adam_only.param_groups}
    assert lrs["matrix"] == pytest.approx(ADAMW_MATRIX_LR * scale)
    cfg = OptimConfig.from_preset(CPU, optimizer="adamw", matrix_lr=1e-3)
    (adam_only,) = build_optimizers(model, cfg)
    assert {g["name"]: g["lr"] for g in adam_only.param_groups}["matrix"] == pytest.approx(
        1e-3 * scale
    )
    planted = OptimConfig.from_preset(CPU, lr_width_exponent=0.0)  # a mis-scaled family
    lrs = {g["name"]: g["lr"] for g in build_optimizers(model, planted)[0].param_groups}
    assert lrs["embedding"] == pytest.approx(0.3)


def test_config_rejects_bad_settings():
    with pytest.raises(UserError, match="muon, adamw"):
        OptimConfig(optimizer="sgd")
    with pytest.raises(UserError, match="unknown optimizer setting"):
        OptimConfig.from_preset(CPU, matrix_lrr=0.1)
    with pytest.raises(UserError):
        OptimConfig(embedding_lr=-1.0)
    with pytest.raises(UserError):
        OptimConfig(adam_betas=(0.9, 1.0))
    with pytest.raises(UserError):
        OptimConfig(muon_momentum=(0.85, 1.2, 300))
    assert OptimConfig.from_preset(CPU, matrix_lr=None).matrix_lr == CPU.matrix_lr


def test_set_schedule_applies_lr_and_momentum():
    model = tiny_gpt()
    cfg = OptimConfig.from_preset(CPU, warmup_steps=4)
    opts = build_optimizers(model, cfg)
    mult, mom = set_schedule(opts, 1, 100, cfg)
    assert mult == pytest.approx(0.5) and mom == pytest.approx(0.85 + 0.1 / 300)
    for o in opts:
        for g in o.param_groups:
            assert g["lr"] == pytest.approx(g["initial_lr"] * 0.5)
            if isinstance(o, Muon):
                assert g["momentum"] == mom


# --------------------------------------------------------------------------------- training


def fixed_batch(model: GPT, rows: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.cfg.vocab_size, (rows, model.cfg.seq_len + 1), generator=g)
    return x[:, :-1], x[:, 1:]


def train(model, opts, cfg, steps, start=0, total=None):
    x, y = fixed_batch(model)
    losses = []
    for s in range(start, start + steps):
        set_schedule(opts, s, total or steps, cfg)
        loss = model(x, y)
        loss.backward()
        for o in opts:
            o.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_tiny_gpt_learns_a_fixed_batch(optimizer):
    model = tiny_gpt(depth=1)
    cfg = OptimConfig.from_preset(CPU, optimizer=optimizer)
    losses = train(model, build_optimizers(model, cfg), cfg, 30)
    assert losses[0] == pytest.approx(math.log(CPU.vocab_size), abs=0.1)
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_resume_is_bit_exact(optimizer):
    cfg = OptimConfig.from_preset(CPU, optimizer=optimizer, warmup_steps=2)
    model = tiny_gpt(depth=1)
    opts = build_optimizers(model, cfg)
    train(model, opts, cfg, 5, total=10)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optim": [o.state_dict() for o in opts]}, buf)
    train(model, opts, cfg, 5, start=5, total=10)

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    resumed = tiny_gpt(depth=1, seed=123)  # different init: everything must come from ckpt
    resumed.load_state_dict(ckpt["model"])
    opts2 = build_optimizers(resumed, cfg)
    for o, sd in zip(opts2, ckpt["optim"]):
        o.load_state_dict(sd)
    train(resumed, opts2, cfg, 5, start=5, total=10)
    for (name, a), (_, b) in zip(model.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), name
