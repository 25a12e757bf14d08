"""nanochat's 2026 recipe changes as options (docs/raise-the-line.md): each is a no-op when off
(the v1 model, its state-dict keys, its run ids), does what it says when on, and is counted
exactly (parameters and FLOPs by hand, against the built model, and nanochat's own published batch
table for the gpu-v2 preset)."""

import math

import pytest
import torch

from miniseries.accounting import flops_per_token, param_counts
from miniseries.config import CPU_V1, GPU, GPU_V2, get_preset
from miniseries.plan import plan_for_depth, plan_isoflop
from miniseries.study.runspec import isoflop_specs
from miniseries.train.model import GPT, CausalSelfAttention, window_mask
from miniseries.train.optim import (
    Muon,
    OptimConfig,
    build_optimizers,
    cosine_decay,
    param_groups,
    set_schedule,
    zeropower_via_newtonschulz5,
)

CPU = CPU_V1  # the options are measured against v1 (the cpu preset now has two of them on)
ALL_ON = dict(value_embeds=True, window_pattern="SSSL", lambdas=True, smear=True, backout=True)


def model(depth=3, **kw):
    torch.manual_seed(0)
    return GPT(CPU.with_overrides(**kw).model_config(depth))


def shared(src: GPT, dst: GPT) -> GPT:
    """dst with src's weights wherever the names match (the v1 parameters)."""
    dst.load_state_dict(src.state_dict(), strict=False)
    return dst


IDX = torch.randint(0, 512, (2, 64), generator=torch.Generator().manual_seed(1))


# ---- off: the v1 model --------------------------------------------------------------------


def test_off_is_v1_model_dict_keys_and_ids():
    cfg = CPU.model_config(3)
    assert set(cfg.to_dict()) == {"depth", "d_model", "n_heads", "vocab_size", "seq_len"}
    keys = set(model(3).state_dict())
    expected = {"wte.weight", "lm_head.weight"} | {
        f"blocks.{i}.{m}.weight"
        for i in range(3)
        for m in ("attn.c_q", "attn.c_k", "attn.c_v", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    }
    assert keys == expected
    # an option at its v1 value is the v1 run (same id); on, a different one
    kw = dict(data=".", tokenizer=".", log=lambda *_: None)
    (v1,) = isoflop_specs([2e11], [3], CPU, **kw)
    (same,) = isoflop_specs([2e11], [3], CPU, overrides={"softcap": 15.0, "smear": False}, **kw)
    (on,) = isoflop_specs([2e11], [3], CPU, overrides={"smear": True}, **kw)
    assert v1.identity()["model"] == same.identity()["model"]
    assert on.run_id != v1.run_id


def test_gpu_v1_reachable_by_name():
    assert get_preset("gpu-v1") is GPU and get_preset("gpu") is GPU
    assert get_preset("gpu-v2").value_embeds and not GPU.value_embeds


# ---- exact accounting ------------------------------------------------------------------------


def test_param_counts_by_hand_and_against_the_model():
    # cpu d3: d_model 32, one head, vocab 512; value-embedding layers 0 and 2 (alternating,
    # the last included); gates 12 x 1 each; lambdas 2 x 3; smear gate 24 + lambda; backout 1
    cfg = CPU.with_overrides(**ALL_ON).model_config(3)
    c = param_counts(cfg)
    assert cfg.value_embed_layers == (0, 2)
    assert c.value_embeds == 2 * 512 * 32
    assert c.matrices == 12 * 3 * 32 * 32 + 2 * 12 * 1
    assert c.scalars == 6 + 24 + 1 + 1
    assert c.total == 512 * 32 * 2 + c.value_embeds + c.matrices + c.scalars
    assert c.kaplan == c.matrices + 512 * 32  # value embeddings are embedding params
    for kw in ({}, ALL_ON, dict(value_embeds=True), dict(smear=True), dict(lambdas=True)):
        for depth in (1, 2, 4):
            m = model(depth, **kw)
            assert sum(p.numel() for p in m.parameters()) == param_counts(m.cfg).total


def test_flops_window_and_gates_by_hand():
    # d4 SSSL at seq 128: windows 32, 32, 32, 128 (the last layer full); attention 12 d T per
    # layer; the gates are matmuls (value gates in matrices, the smear gate's 24 on top)
    cfg = CPU.with_overrides(**ALL_ON).model_config(4)
    assert cfg.windows == (32, 32, 32, 128)
    d, v = 40, 512
    matrices = 12 * 4 * d * d + 2 * 12 * 1  # layers 1 and 3 carry value embeddings
    expected = 6 * (v * d + matrices + 24) + 12 * d * (32 * 3 + 128)
    assert flops_per_token(cfg) == expected
    v1 = CPU.model_config(4)
    assert flops_per_token(v1) == 6 * (v * d + 12 * 4 * d * d) + 12 * 4 * d * 128
    assert CPU.with_overrides(window_pattern="S").model_config(1).windows == (128,)


# ---- on: each does what it says ------------------------------------------------------------


def test_window_mask_and_attention_sees_only_its_window():
    m = window_mask(8, 2)
    for i in range(8):
        for j in range(8):
            assert bool(m[i, j]) == (0 <= i - j <= 2)
    assert window_mask(8, 8) is None
    cfg = CPU.with_overrides(window_pattern="SL", seq_len=16).model_config(2)
    torch.manual_seed(0)
    attn = CausalSelfAttention(cfg, layer=0)  # window 16 // 4 = 4
    assert attn.window == 4
    x = torch.randn(1, 16, cfg.d_model)
    from miniseries.train.model import rotary_tables

    cos, sin = rotary_tables(16, cfg.head_dim)
    y = attn(x, cos, sin)
    far, near = x.clone(), x.clone()
    far[0, 5] += 1.0  # 10 - 5 = 5 > 4: outside position 10's window
    near[0, 6] += 1.0  # 10 - 6 = 4: inside
    assert torch.allclose(attn(far, cos, sin)[0, 10], y[0, 10])
    assert not torch.allclose(attn(near, cos, sin)[0, 10], y[0, 10])


@pytest.mark.parametrize("option", ["value_embeds", "lambdas", "smear", "backout"])
def test_option_at_its_neutral_values_is_the_v1_function(option):
    v1 = model(3)
    on = shared(v1, model(3, **{option: True}))
    with torch.no_grad():
        if option == "value_embeds":
            for ve in on.value_embeds.values():
                ve.weight.zero_()
        if option == "lambdas":
            on.resid_lambdas.fill_(1.0)
            on.x0_lambdas.zero_()
        if option == "backout":
            on.backout_lambda.zero_()
        # smear: lambda starts at 0, nanochat's init, so the function starts as v1's
        ref = v1(IDX)
        assert torch.allclose(on(IDX), ref, atol=1e-5)
        # and away from them it is not
        if option == "value_embeds":
            for ve in on.value_embeds.values():
                ve.weight.normal_()
        if option == "lambdas":
            on.x0_lambdas.fill_(0.5)
        if option == "smear":
            on.smear_lambda.fill_(1.0)
        if option == "backout":
            on.backout_lambda.fill_(0.5)
        for b in on.blocks:  # v1's zero-init output projections would hide the attention path
            b.attn.c_proj.weight.normal_(0, 0.1)
            b.mlp.c_proj.weight.normal_(0, 0.1)
        v1.load_state_dict({k: v for k, v in on.state_dict().items() if k in v1.state_dict()})
        assert not torch.allclose(on(IDX), v1(IDX), atol=1e-3)


def test_lambda_init_and_smear_leaves_the_first_position():
    m = model(5, lambdas=True, smear=True)
    assert torch.allclose(m.resid_lambdas, torch.tensor([1.15, 1.125, 1.10, 1.075, 1.05]))
    assert torch.allclose(m.x0_lambdas, torch.tensor([0.20, 0.1625, 0.125, 0.0875, 0.05]))
    v1 = shared(m, model(5, lambdas=True))
    with torch.no_grad():
        m.smear_lambda.fill_(5.0)
        changed = (m(IDX) - v1(IDX)).abs().amax(-1)[0]
    assert changed[0] < 1e-5 < changed[1:].min()  # position 0 has no previous token


def test_softcap_bounds_the_logits():
    for cap in (15.0, 20.0):
        m = model(2, softcap=cap)
        with torch.no_grad():
            m.lm_head.weight.normal_(0, 50.0)
            logits = m(IDX)
        assert logits.abs().max() <= cap + 1e-4 and logits.abs().max() > 0.99 * cap


def test_every_option_parameter_has_its_optimizer_group():
    m = model(4, **ALL_ON)
    groups = param_groups(m)
    assert [p.shape for p in groups["resid"]] == [torch.Size([4])]
    assert len(groups["value_embeds"]) == 2 and len(groups["smear"]) == 3
    opts = build_optimizers(m, OptimConfig(muon_weight_decay=0.1))
    names = {g["name"] for g in opts[0].param_groups}
    assert names == {"unembedding", "embedding", "value_embeds", "resid", "x0", "smear"}
    lrs = {g["name"]: g["lr"] for g in opts[0].param_groups}
    width = (40 / 768) ** -0.5
    assert lrs["value_embeds"] == pytest.approx(0.3 * width * 0.5)
    assert lrs["resid"] == pytest.approx(0.005) and lrs["x0"] == pytest.approx(0.5)
    assert opts[1].param_groups[0]["cautious"]


# ---- optimizer and schedule options ---------------------------------------------------------


def test_cautious_weight_decay_decays_only_where_update_and_weight_agree():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4, 3))
    p.grad = torch.randn(4, 3)
    p0, g = p.detach().clone(), p.grad.clone()
    opt = Muon([p], lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.5, cautious=True)
    opt.step()
    u = zeropower_via_newtonschulz5(g[None])[0] * max(1, 4 / 3) ** 0.5  # the scaled update
    mask = (u * p0) >= 0
    expected = p0 - 0.1 * 0.5 * p0 * mask - 0.1 * u
    assert torch.allclose(p.detach(), expected, atol=1e-6)
    assert 0 < mask.sum() < mask.numel()  # both kinds of entry occur


def test_weight_decay_cosine_schedule_and_its_scaling():
    assert cosine_decay(0.28, 0, 100) == pytest.approx(0.28)
    assert cosine_decay(0.28, 50, 100) == pytest.approx(0.14)
    assert cosine_decay(0.28, 100, 100) == pytest.approx(0.0, abs=1e-12)
    m = model(2)
    cfg = OptimConfig(muon_weight_decay=0.2)
    opts = build_optimizers(m, cfg)
    set_schedule(opts, 25, 100, cfg)
    assert opts[1].param_groups[0]["weight_decay"] == pytest.approx(0.2 * 0.5 * (1 + 2**-0.5))
    p = CPU.with_overrides(muon_weight_decay=0.28, ref_tokens=1_000_000)
    # lambda = 0.28 sqrt(B / B_ref) (D_ref / D): twice the horizon, half the decay
    assert p.muon_weight_decay_for(2_000_000) == pytest.approx(0.14)
    assert p.with_overrides(batch_tokens=4096, ref_batch=1024).muon_weight_decay_for(
        1_000_000
    ) == pytest.approx(0.56)


def test_batch_rule_by_hand_and_through_the_plan():
    p = CPU.with_overrides(batch_exponent=0.383, ref_tokens=307_200)
    # 1024 x 10^0.383 = 2477 -> 2^11; 1024 x 0.1^0.383 = 423 -> 2^9; never under one row
    assert p.batch_for(3_072_000) == 2048
    assert p.batch_for(30_720) == 512
    assert p.batch_for(1) == 128
    assert CPU.batch_for(3_072_000) == 1024  # off: the fixed batch
    plan = plan_isoflop(2, 1.1e12, p)
    fpt = flops_per_token(p.model_config(2))
    assert plan.batch_tokens == p.batch_for(1.1e12 / fpt)
    assert plan.steps == round(1.1e12 / fpt / plan.batch_tokens)
    (spec,) = isoflop_specs([1.1e12], [2], CPU, data=".", tokenizer=".",
                            overrides={"batch_exponent": 0.383, "ref_tokens": 307_200})  # fmt: skip
    assert spec.overrides["batch_tokens"] == plan.batch_tokens
    assert spec.overrides["ref_batch"] == 1024
    assert spec.plan().tokens == plan.tokens
    resolved = spec.preset_config()
    assert resolved.batch_lr_scale() == pytest.approx(math.sqrt(plan.batch_tokens / 1024))


def test_gpu_v2_matches_nanochats_published_auto_batch_table():
    # nanochat dev/LOG.md, 2026-02-05 "Auto Batch Size Scaling": d8 42M scaling params 2^18;
    # d10-16 2^19; d18-26 2^20 (at ratio 12 x (matrices + lm_head))
    d12 = param_counts(GPU_V2.model_config(12))
    assert GPU_V2.ref_tokens == 12 * d12.kaplan
    assert param_counts(GPU_V2.model_config(8)).kaplan == pytest.approx(42e6, rel=0.01)
    expected = {8: 2**18, 10: 2**19, 12: 2**19, 16: 2**19, 18: 2**20, 20: 2**20, 26: 2**20}
    for depth, batch in expected.items():
        assert plan_for_depth(depth, GPU_V2).batch_tokens == batch, depth
    # value embeddings add parameters, not FLOPs; windows remove attention FLOPs
    v1 = GPU.model_config(12)
    v2 = GPU_V2.model_config(12)
    assert v2.windows == (512, 512, 512, 2048) * 2 + (512, 512, 512, 2048)
    assert flops_per_token(v2) < flops_per_token(v1)


def test_trainer_applies_batch_lr_scale_and_scaled_weight_decay(tiny_data, tmp_path):
    from miniseries.train.trainer import TrainConfig, Trainer

    tokens, tok = tiny_data
    tiny = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 4}
    rule = dict(batch_tokens=1024, ref_batch=512, ref_tokens=20_480, muon_weight_decay=0.28,
                batch_exponent=0.383)  # fmt: skip

    def trainer(name, **ov):
        cfg = TrainConfig(depth=1, out=str(tmp_path / name), data=str(tokens),
                          tokenizer=str(tok), steps=10, overrides=tiny | ov)  # fmt: skip
        return Trainer(cfg, progress=False)

    t, base = trainer("rule", **rule), trainer("base")
    lr = {g["name"]: g["initial_lr"] for o in t.optimizers for g in o.param_groups}
    lr0 = {g["name"]: g["initial_lr"] for o in base.optimizers for g in o.param_groups}
    for name in lr0:
        assert lr[name] == pytest.approx(lr0[name] * math.sqrt(2))
    # D = 10 x 1024: lambda = 0.28 x sqrt(1024 / 512) x 20480 / 10240
    assert t.ocfg.muon_weight_decay == pytest.approx(0.28 * math.sqrt(2) * 2)
    assert base.ocfg.muon_weight_decay == 0


def test_trainer_trains_the_batch_its_rule_chose(tiny_data, tmp_path):
    """`miniseries train --ratio` with the batch rule on: the trainer's batch and its tokens per
    step are the plan's (not the preset's fixed batch), and every LR is x sqrt(B / B_ref)."""
    from miniseries.train.trainer import TrainConfig, Trainer

    tokens, tok = tiny_data
    ov = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 4,
          "batch_exponent": 0.383, "ref_tokens": 2_000}  # fmt: skip
    cfg = TrainConfig(depth=1, out=str(tmp_path / "r"), data=str(tokens), tokenizer=str(tok),
                      ratio=2.0, overrides=ov)  # fmt: skip
    t = Trainer(cfg, progress=False)
    n = param_counts(t.model_cfg).total
    expected = 2 ** round(math.log2(512 * (2.0 * n / 2_000) ** 0.383))
    assert t.plan.batch_tokens == expected != 512
    assert t.tokens_per_step == expected and t.preset.reference_batch() == 512
    assert t.rows * t.accum * 64 == expected
