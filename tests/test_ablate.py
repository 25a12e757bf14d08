"""`miniseries ablate optimizer` end to end, small: each arm tuned, the same design for both, the
comparison and its write-up; a rerun trains nothing."""

import json

from miniseries.jobs.ablate import AblationConfig, design, run_ablation
from miniseries.store.db import open_store

TINY = {"vocab_size": 512, "seq_len": 64, "batch_tokens": 512, "device_batch_size": 8}


def test_small_optimizer_ablation(markov_data, tmp_path):
    tokens, tok = markov_data
    cfg = AblationConfig(
        project=str(tmp_path / "ab"), budgets=(4e10, 5.7e10, 8e10), window=4, lr_steps=20,
        lr_mults=(0.5, 1.0, 2.0), n_bootstrap=50, evals=2, min_steps=10, data=str(tokens),
        tokenizer=str(tok), overrides=TINY, progress=False,
    )  # fmt: skip
    lines = []
    result = run_ablation(cfg, "optimizer", log=lines.append)
    windows = design(cfg)
    with open_store(cfg.project, create=False) as store:
        iso = store.list_runs(kind="isoflop", status="done")
        sweeps = {f["optimizer"]: f for f in _lr_fits(store)}
    for arm in ("muon", "adamw"):  # the same design for both arms, at its own tuned LR
        runs = [r for r in iso if r["study"] == arm]
        got = {(r["budget"], r["depth"]) for r in runs}
        assert got == {(c, d) for c, ds in windows.items() for d in ds}
        specs = [json.loads(r["config_json"])["spec"] for r in runs]
        assert {s["optimizer"] for s in specs} == {arm}
        lr = float(f"{sweeps[arm]['common_lr']:.3g}")  # the stored verdict's common multiplier
        assert {s["lr_mult"] for s in specs} == {lr} == {result["tuned"][arm][0]}
    c = result["comparison"]
    assert c.names == ("muon", "adamw") and "optimizer: muon -> adamw" in c.settings
    assert not any("not tuned" in n for n in c.notes)  # both arms had their LR sweep
    text = (tmp_path / "ab" / "ablation.md").read_text()
    assert "muon: x" in text and "adamw: x" in text and "## What it says" in text
    assert "Effective compute multiplier" in text and "(90% CI)" in text
    md = result["report"].md_path.read_text()
    assert "**adamw** against **muon**" in md
    with open_store(cfg.project, create=False) as store:
        before = {r["run_id"]: r["finished_at"] for r in store.list_runs()}
    again = run_ablation(cfg, "optimizer", log=lines.append)  # resumable: nothing retrained
    with open_store(cfg.project, create=False) as store:
        assert {r["run_id"]: r["finished_at"] for r in store.list_runs()} == before
    assert again["tuned"] == result["tuned"]


def _lr_fits(store):
    rows = store.db.execute("SELECT json FROM fits WHERE kind = 'lr_transfer'").fetchall()
    return [json.loads(r[0]) for r in rows]
