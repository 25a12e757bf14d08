"""`miniseries ablate options`: what each recipe change is worth in compute ("raise the line").

Arms: the baseline, one arm per change (a set of preset overrides: nanochat's 2026 changes by
name, or any overridable field as `--arm NAME:field=value,...`), and all the changes together. Every
arm trains the same rule-placed isoFLOP design (docs/raise-the-line.md). Each arm's LR is checked
at the design's middle cell (x0.7, x1.4); a change that moves its best LR there beyond the noise
threshold trains again at that multiplier (its tuned arm is the one the ledger reads). One project
holds every run (a run two arms share is trained once); rerun to resume. The analysis is
miniseries/study/ledger.py (no torch).
"""

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from miniseries.jobs.recipe_ablation import (
    DesignConfig,
    base_tokens,
    cell_specs,
    execute_unique,
    finished_rows,
)
from miniseries.jobs.recipe_ablation import design as rule_design

# nanochat HEAD's changes since v1, as overrides of a v1 preset (docs/raise-the-line.md).
# "ref" in a value: the design's reference horizon (the geometric mean of its base tokens).
CHANGES = {
    "value_embeds": {"value_embeds": True},
    "window": {"window_pattern": "SSSL"},
    "lambdas": {"lambdas": True},
    "smear": {"smear": True},
    "backout": {"backout": True},
    "softcap20": {"softcap": 20.0},
    "schedule": {"warmup_steps": 40, "warmdown_ratio": 0.65, "final_lr_frac": 0.05},
    "muon_wd": {"muon_weight_decay": 0.28, "ref_tokens": "ref"},
    "unembed_lr": {"unembedding_lr": 0.008},
    "batch": {"batch_exponent": 0.383, "ref_tokens": "ref"},
}
CPU_CHANGES = tuple(CHANGES)  # every change makes sense at CPU scale (docs/raise-the-line.md)
ALL = "all"  # the arm with every change together: v2 at this scale
LR_CHECK = (0.7, 1.4)


@dataclass
class LedgerConfig(DesignConfig):
    project: str = "raise-the-line"
    budgets: tuple[float, ...] = (2e11, 3.6e11, 6.3e11)  # the demo's fit budgets but the last
    changes: tuple[str, ...] = CPU_CHANGES
    custom: dict = field(default_factory=dict)  # {arm name: overrides} from --arm


def design(cfg: LedgerConfig) -> dict[float, list[int]]:
    return rule_design(cfg)


def reference_tokens(cfg: LedgerConfig) -> int:
    """The design's reference horizon D_ref: the geometric mean of the base arm's tokens."""
    windows = design(cfg)
    logs = [math.log(base_tokens(cfg, d, c)) for c, ds in windows.items() for d in ds]
    return round(math.exp(sum(logs) / len(logs)))


def arm_overrides(cfg: LedgerConfig) -> dict[str, dict]:
    """{arm: overrides}: base, each change, the custom arms, all the named changes together."""
    unknown = sorted(set(cfg.changes) - set(CHANGES))
    if unknown:
        from miniseries.errors import UserError

        raise UserError(f"unknown change(s) {unknown}; choose from {', '.join(CHANGES)}")
    ref = reference_tokens(cfg)

    def resolve(ov):
        return {k: (ref if v == "ref" else v) for k, v in ov.items()}

    arms = {"base": {}}
    arms |= {c: resolve(CHANGES[c]) for c in cfg.changes}
    arms |= {name: dict(ov) for name, ov in cfg.custom.items()}
    if len(cfg.changes) > 1:
        arms[ALL] = {k: v for c in cfg.changes for k, v in resolve(CHANGES[c]).items()}
    return arms


def arm_specs(cfg: LedgerConfig, common: dict, name: str, ov: dict, lr_mult=1.0) -> dict:
    """{(budget, depth): [spec]} of one arm on the design."""
    out = {}
    for c, depths in design(cfg).items():
        for d in depths:
            out[(c, d)] = cell_specs(cfg, common, name, d, c, lr_mult=lr_mult, overrides=ov)
    return out


def middle_cell(cfg: LedgerConfig) -> tuple[float, int]:
    windows = design(cfg)
    c = sorted(windows)[len(windows) // 2]
    return c, windows[c][len(windows[c]) // 2]


def check_specs(cfg: LedgerConfig, common: dict, name: str, ov: dict, lr_mult=1.0) -> list:
    c, d = middle_cell(cfg)
    return [s for m in LR_CHECK for s in cell_specs(cfg, common, name, d, c, lr_mult * m, ov)]


def run_ledger(cfg: LedgerConfig, log=print) -> dict:
    """Train every arm and its LR check (resumable), retrain arms whose LR moved, write the
    ledger: PROJECT/raise-the-line.md and .json."""
    from miniseries.jobs.demo import prepare_data
    from miniseries.paths import atomic_write_text
    from miniseries.study.attribution import Z90
    from miniseries.study.ledger import SEED_NOISE, analyse, lr_moved, markdown

    Path(cfg.project).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data, tokenizer, _ = prepare_data(cfg, log)
    common = dict(data=data, tokenizer=tokenizer)
    overrides = arm_overrides(cfg)
    arms = {a: arm_specs(cfg, common, a, ov) for a, ov in overrides.items()}
    checks = {a: check_specs(cfg, common, a, ov) for a, ov in overrides.items()}
    log(f"== phase 1: {len(arms)} arms on the design, each with its LR check")
    execute_unique([s for a in arms.values() for ss in a.values() for s in ss]
                   + [s for ss in checks.values() for s in ss], cfg, log)  # fmt: skip
    cell = middle_cell(cfg)
    threshold = Z90 * math.sqrt(2) * SEED_NOISE
    tuned = {}
    for a in arms:
        rows = finished_rows(cfg, {cell: arms[a][cell] + checks[a]})[cell]
        m = lr_moved(rows, 1.0, threshold)
        if m != 1.0:
            tuned[a] = m
    if tuned:
        log(f"== phase 2: LR moved for {', '.join(f'{a} (x{m:g})' for a, m in tuned.items())}")
        for a, m in tuned.items():
            arms[a] = arm_specs(cfg, common, a, overrides[a], lr_mult=m)
        execute_unique([s for a in tuned for ss in arms[a].values() for s in ss], cfg, log)
    result = analyse(
        {a: finished_rows(cfg, specs) for a, specs in arms.items()},
        {a: finished_rows(cfg, {cell: arms_cell + checks[a]})[cell]
         for a, arms_cell in ((a, arms[a][cell]) for a in arms)},
        overrides, tuned, threshold, n_bootstrap=cfg.n_bootstrap, log=log,
    )  # fmt: skip
    result["wall_s"] = time.time() - t0
    result["design"] = {f"{c:.3g}": ds for c, ds in design(cfg).items()}
    result["reference_tokens"] = reference_tokens(cfg)
    out = Path(cfg.project)
    atomic_write_text(out / "raise-the-line.json", json.dumps(result, indent=1, default=str))
    atomic_write_text(out / "raise-the-line.md", markdown(result))
    log(f"\nledger: {out / 'raise-the-line.md'} ({result['wall_s'] / 60:.1f} min)")
    return result


def plan_text(cfg: LedgerConfig) -> str:
    """What `ablate options --dry-run` prints: runs per arm and the wall time on this CPU (phase
    2, which only an arm whose LR moved needs, not counted)."""
    from miniseries.study.plan_cost import cpu_costs, cpu_step_seconds, makespan

    common = dict(data=cfg.data or ".", tokenizer=cfg.tokenizer or ".")
    seen, lines, specs = set(), [], []
    for a, ov in arm_overrides(cfg).items():
        ss = [s for cell in arm_specs(cfg, common, a, ov).values() for s in cell]
        ss += check_specs(cfg, common, a, ov)
        new = [s for s in ss if s.run_id not in seen]
        seen |= {s.run_id for s in ss}
        specs += new
        lines.append(f"  {a}: {len(ss)} runs, {len(new)} new  {ov or '(the preset)'}")
    step_s = cpu_step_seconds(specs)
    wall = makespan([c.seconds for c in cpu_costs(specs, step_s)], cfg.workers)
    windows = "; ".join(f"{c:.3g}: d{d[0]}-d{d[-1]}" for c, d in design(cfg).items())
    return "\n".join(
        [f"raise-the-line ledger in {cfg.project}: design {windows}", *lines,
         f"  {len(specs)} runs, ~{wall / 60:.0f} min on {cfg.workers} workers of this CPU "
         "(timed here; an arm whose LR moves trains its design again)"]
    )  # fmt: skip
