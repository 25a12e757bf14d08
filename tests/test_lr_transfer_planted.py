"""A planted mis-scaled learning rate must make the transfer check and the crossing detector fire.

The bug: AdamW learning rates scaled as width^-2.5 instead of nanochat's width^-0.5, normalised
so that depth 1 gets exactly its correct LR. Every bigger model then trains its embeddings with
an LR that is (w/16)^-2 times too small: 6x at depth 4. A real LR sweep over the AdamW multiplier
(tiny real training runs) must see the optimum move with depth, and the family trained at the
depth-1 LR must show what a broken setup looks like to the crossing detector.
"""

from miniseries.config import CPU
from miniseries.laws.crossing import check
from miniseries.laws.lr_transfer import transfer_check
from miniseries.report.project_report import curve_of, load_study
from miniseries.study.runspec import RunSpec
from miniseries.study.sweep import execute

TINY = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 8}
PLANTED = -2.5
D1_WIDTH = CPU.model_config(1).d_model
# adam multiplier that makes the planted rule give depth 1 its correct LR
NORMALISE = (D1_WIDTH / CPU.lr_scale_width) ** (-0.5 - PLANTED)
GRID = (1 / 8, 1 / 2, 2.0, 8.0, 32.0)


def _spec(tiny_data, depth, mult, steps=150, exponent=PLANTED, kind="lr_sweep"):
    tokens, tok = tiny_data
    return RunSpec(
        depth=depth, steps=steps, data=str(tokens), tokenizer=str(tok), overrides=TINY,
        evals=2, adam_lr_mult=NORMALISE * mult, lr_width_exponent=exponent, kind=kind,
    )  # fmt: skip


def test_planted_width_scaling_fires_transfer_check_and_crossing(tiny_data, tmp_path):
    project = tmp_path / "p"
    specs = [_spec(tiny_data, d, m) for d in (1, 4) for m in GRID]
    rows = execute(specs, project, workers=2, progress=False, log=lambda *a: None)
    results = {}
    for spec, row in zip(specs, rows):
        results.setdefault(spec.depth, []).append((spec.adam_lr_mult / NORMALISE, row["val_bpb"]))
    verdict = transfer_check(results)
    assert not verdict.ok, verdict.summary()
    assert verdict.optima[4]["lr_mult"] > verdict.optima[1]["lr_mult"]  # drifts up with width

    # the family at the depth-1 LR: bigger models no longer beat smaller ones at equal phase
    series = [_spec(tiny_data, d, 1.0, steps=60 * d, kind="series") for d in (1, 2, 3, 4)]
    execute(series, project, workers=2, progress=False, log=lambda *a: None)
    study = load_study(project)
    curves = [curve_of(study, r) for r in study.done("series")]
    assert len(curves) == 4
    assert not check(curves=curves).ok
