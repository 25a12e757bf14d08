"""`miniseries ablate recipe`: is the cpu family's law the models' or the recipe's?

The protocol in docs/recipe-ablation.md, in code: one arm per recipe factor (seed, Muon's momentum
ramp, the warm-down, the batch, the LR's horizon), each a rule of the (depth, budget) cell, on
the same rule-placed isoFLOP design; a gold standard whose every point is the best LR of a small
grid at that cell; an LR rule fitted once on the gold cells and checked on cells it was not fitted
on; seed noise at two cells. Every run lives in one project (a run shared by two arms, as base's
runs are gold's x1 points, is trained once); rerun to resume. The analysis is
miniseries/laws/attribution.py (no torch).
"""

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from miniseries.config import CPU_V1, Preset

ARMS = ("base", "seed1", "momentum", "warmdown", "batch", "lr_rule")
GOLD_GRID = (0.5, 0.7, 1.0, 1.4, 2.0)
GOLD_EDGES = {0.5: 0.35, 2.0: 2.8}  # a best at a grid edge gets the next point past it, once
RAMP_CAP, RAMP_FRAC = 300, 0.1  # momentum arm: ramp over min(300, 10% of the run)
BATCH_EXPONENT, BATCH_RANGE = 0.383, (256, 8192)  # batch arm: B = 1024 (D / D_ref)^0.383
TRANSFER_MULTS = (0.7, 1.4)  # the rule's check: its LR x these at the last budget
TRANSFER_DEPTHS = 3  # first, middle and last depth of the last budget's window


@dataclass
class DesignConfig:
    """What a study of arms on one rule-placed isoFLOP design needs (this attribution, the
    raise-the-line ledger): where, which family and budgets, how its runs train and are fitted."""

    project: str = "recipe"
    preset: Preset = CPU_V1  # the family the study was measured on (v1)
    budgets: tuple[float, ...] = (2e11, 3.6e11, 6.3e11, 1.1e12)  # the demo's fit budgets
    window: int = 5
    workers: int = 2
    evals: int = 3
    compile: bool = True
    n_bootstrap: int = 400
    convention: str = "total"
    data: str | None = None
    tokenizer: str | None = None
    overrides: dict = field(default_factory=dict)
    progress: bool = True
    core_cap: int | None = None  # no CORE: the question is about the loss


@dataclass
class RecipeConfig(DesignConfig):
    gold_budgets: int = 3  # the reduced design: the first three
    noise_cells: tuple[tuple[int, float], ...] = ((5, 2e11), (2, 1.1e12))
    noise_seeds: int = 4


def design(cfg: DesignConfig) -> dict[float, list[int]]:
    """Every budget's window centred by the rule on the preset ratio's N* (no arm places it)."""
    from miniseries.study.stored_fits import depth_window, planned_n_opt

    preset = cfg.preset.with_overrides(**cfg.overrides)
    out = {}
    for c in sorted(cfg.budgets):
        n_opt, _ = planned_n_opt([], c, preset, cfg.convention)
        out[c] = depth_window(n_opt, preset, cfg.convention, cfg.window)
    return out


def base_tokens(cfg: RecipeConfig, depth: int, budget: float) -> int:
    from miniseries.plan import plan_isoflop

    return plan_isoflop(depth, budget, cfg.preset.with_overrides(**cfg.overrides)).tokens


def batch_for(tokens: float, d_ref: float, preset: Preset) -> int:
    """The batch arm's rule: 1024 (D / D_ref)^0.383 tokens, rounded to the nearest power of two,
    kept in BATCH_RANGE and to whole rows."""
    b = 1024 * (tokens / d_ref) ** BATCH_EXPONENT
    b = 2 ** round(math.log2(b))
    b = min(max(b, BATCH_RANGE[0]), BATCH_RANGE[1])
    return max(preset.seq_len, b // preset.seq_len * preset.seq_len)


def ramp_for(steps: int) -> int:
    return min(RAMP_CAP, max(1, round(RAMP_FRAC * steps)))


def cell_specs(
    cfg, common, arm, depth, budget, lr_mult=1.0, overrides=None, seed=0, kind="isoflop"
):
    from miniseries.study.runspec import isoflop_specs

    ov = {**cfg.overrides, **(overrides or {})}
    specs = isoflop_specs(
        [budget], [depth], cfg.preset, study=arm, lr_mult=float(f"{lr_mult:.3g}"), seed=seed,
        evals=cfg.evals, compile=cfg.compile, overrides=ov, log=lambda *_: None, **common,
    )  # fmt: skip
    for s in specs:
        s.kind = kind
    return specs


def arm_specs(cfg: RecipeConfig, common: dict, arm: str, rule=None) -> dict:
    """{(budget, depth): [spec]} of one arm on the full design (lr_rule needs the fitted rule)."""
    from miniseries.plan import plan_isoflop

    windows = design(cfg)
    d_ref = math.exp(
        sum(math.log(base_tokens(cfg, d, c)) for c, ds in windows.items() for d in ds)
        / sum(len(ds) for ds in windows.values())
    )
    out = {}
    for c, depths in windows.items():
        for d in depths:
            steps = plan_isoflop(d, c, cfg.preset.with_overrides(**cfg.overrides)).steps
            kw = {}
            if arm == "seed1":
                kw = dict(seed=1)
            elif arm == "momentum" and ramp_for(steps) != RAMP_CAP:  # else: base's run
                kw = dict(overrides={"muon_momentum": [0.85, 0.95, ramp_for(steps)]})
            elif arm == "warmdown":
                kw = dict(overrides={"warmdown_ratio": 0.65, "final_lr_frac": 0.05})
            elif arm == "batch":
                b = batch_for(base_tokens(cfg, d, c), d_ref, cfg.preset)
                if b != cfg.preset.batch_tokens:  # else: base's run
                    kw = dict(overrides={"batch_tokens": b}, lr_mult=math.sqrt(b / 1024))
            elif arm == "lr_rule":
                kw = dict(lr_mult=rule.multiplier(steps, _params(cfg, d)))
            out[(c, d)] = cell_specs(cfg, common, arm, d, c, **kw)
    return out


def _params(cfg: RecipeConfig, depth: int) -> float:
    from miniseries.accounting import param_counts

    return float(param_counts(cfg.preset.model_config(depth)).by_convention("total"))


def gold_specs(cfg: RecipeConfig, common: dict, mults=GOLD_GRID) -> dict:
    windows = design(cfg)
    out = {}
    for c in sorted(windows)[: cfg.gold_budgets]:
        for d in windows[c]:
            out[(c, d)] = [s for m in mults for s in cell_specs(cfg, common, "gold", d, c, m)]
    return out


def noise_specs(cfg: RecipeConfig, common: dict) -> list:
    return [
        s
        for d, c in cfg.noise_cells
        for seed in range(cfg.noise_seeds)
        for s in cell_specs(cfg, common, "noise", d, c, seed=seed, kind="noise")
    ]


def execute_unique(specs, cfg, log):
    from miniseries.study.sweep import execute

    unique: dict = {}
    for s in specs:  # the first arm to name a run registers it (its kind and study)
        unique.setdefault(s.run_id, s)
    unique = list(unique.values())
    log(f"  {len(unique)} runs ({len(specs) - len(unique)} shared with other arms)")
    execute(unique, cfg.project, workers=cfg.workers, progress=cfg.progress, log=log)


def finished_rows(cfg, specs_by_cell: dict) -> dict:
    """{(budget, depth): [store rows of the cell's finished runs]}."""
    from miniseries.store.db import open_store

    with open_store(cfg.project) as store:
        out = {}
        for cell, specs in specs_by_cell.items():
            rows = [store.get_run(s.run_id) for s in specs]
            out[cell] = [r | {"lr_mult": s.lr_mult} for r, s in zip(rows, specs) if _done(r)]
        return out


def _done(row) -> bool:
    return bool(row) and row.get("status") == "done" and row.get("val_bpb") is not None


def extend_gold(cfg, common, gold: dict) -> dict:
    """Cells whose best grid LR is at an edge get the next multiplier past it (GOLD_EDGES)."""
    rows = finished_rows(cfg, gold)
    extra = {}
    for cell, rs in rows.items():
        if not rs:
            continue
        best = min(rs, key=lambda r: r["val_bpb"])["lr_mult"]
        if best in GOLD_EDGES:
            c, d = cell
            extra[cell] = cell_specs(cfg, common, "gold", d, c, GOLD_EDGES[best])
    return extra


def run_recipe_ablation(cfg: RecipeConfig, log=print) -> dict:
    """Train every arm (resumable), fit the LR rule, check it, analyse; write
    PROJECT/recipe-ablation.md and .json."""
    from miniseries.jobs.demo import prepare_data
    from miniseries.paths import atomic_write_text
    from miniseries.study.attribution import analyse, fit_lr_rule, markdown

    Path(cfg.project).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data, tokenizer, _ = prepare_data(cfg, log)
    common = dict(data=data, tokenizer=tokenizer)
    arms = {a: arm_specs(cfg, common, a) for a in ARMS if a != "lr_rule"}
    gold = gold_specs(cfg, common)
    noise = noise_specs(cfg, common)
    log("== phase 1: the one-factor arms, the gold grid and the seed noise")
    execute_unique([s for a in arms.values() for ss in a.values() for s in ss]
             + [s for ss in gold.values() for s in ss] + noise, cfg, log)  # fmt: skip
    extra = extend_gold(cfg, common, gold)
    if extra:
        log(f"== phase 2: {len(extra)} gold cells best at a grid edge: one more multiplier each")
        execute_unique([s for ss in extra.values() for s in ss], cfg, log)
        for cell, ss in extra.items():
            gold[cell] = gold[cell] + ss
    gold_rows = finished_rows(cfg, gold)
    rule = fit_lr_rule(gold_rows, lambda d: _params(cfg, d))
    log(f"== phase 3: the LR rule fitted on gold: {rule.describe()}")
    arms["lr_rule"] = arm_specs(cfg, common, "lr_rule", rule)
    last = max(design(cfg))
    depths = design(cfg)[last]
    check_depths = sorted({depths[0], depths[len(depths) // 2], depths[-1]})[:TRANSFER_DEPTHS]
    transfer = {}
    for d in check_depths:
        (spec,) = arms["lr_rule"][(last, d)]
        transfer[(last, d)] = [spec] + [
            s for m in TRANSFER_MULTS for s in cell_specs(cfg, common, "lr_check", d, last,
                                                          spec.lr_mult * m)
        ]  # fmt: skip
    execute_unique([s for ss in arms["lr_rule"].values() for s in ss]
             + [s for ss in transfer.values() for s in ss], cfg, log)  # fmt: skip
    result = analyse(
        {a: finished_rows(cfg, specs) for a, specs in arms.items()},
        gold_rows,
        finished_rows(cfg, {("noise", i): [s] for i, s in enumerate(noise)}),
        finished_rows(cfg, transfer),
        rule,
        n_bootstrap=cfg.n_bootstrap,
        log=log,
    )
    result["wall_s"] = time.time() - t0
    result["design"] = {f"{c:.3g}": ds for c, ds in design(cfg).items()}
    out = Path(cfg.project)
    atomic_write_text(out / "recipe-ablation.json", json.dumps(result, indent=1, default=str))
    atomic_write_text(out / "recipe-ablation.md", markdown(result))
    log(f"\nattribution: {out / 'recipe-ablation.md'} ({result['wall_s'] / 60:.1f} min)")
    return result


def plan_text(cfg: RecipeConfig) -> str:
    """What `ablate recipe --dry-run` prints: runs per arm and the wall time on this CPU (phase
    2's extra gold points and phase 3's runs counted at their most)."""
    from miniseries.study.plan_cost import cpu_costs, cpu_step_seconds, makespan

    common = dict(data=cfg.data or ".", tokenizer=cfg.tokenizer or ".")
    arms = {a: arm_specs(cfg, common, a) for a in ARMS if a != "lr_rule"}
    groups = {a: [s for ss in cells.values() for s in ss] for a, cells in arms.items()}
    groups["gold"] = [s for ss in gold_specs(cfg, common).values() for s in ss]
    groups["noise"] = noise_specs(cfg, common)
    groups["lr_rule + check (as base)"] = groups["base"] + groups["base"][-TRANSFER_DEPTHS * 2 :]
    seen, lines, specs = set(), [], []
    for name, ss in groups.items():
        new = [s for s in ss if (s.run_id not in seen or name.startswith("lr_rule"))]
        seen |= {s.run_id for s in ss}
        specs += new
        lines.append(f"  {name}: {len(ss)} runs, {len(new)} new")
    step_s = cpu_step_seconds(specs)
    secs = [c.seconds for c in cpu_costs(specs, step_s)]
    wall = makespan(secs, cfg.workers)
    windows = "; ".join(f"{c:.3g}: d{d[0]}-d{d[-1]}" for c, d in design(cfg).items())
    return "\n".join(
        [f"recipe ablation in {cfg.project}: design {windows}", *lines,
         f"  {len(specs)} runs (+ up to {len(groups['gold']) // len(GOLD_GRID)} gold edge points), "
         f"~{wall / 60:.0f} min on {cfg.workers} workers of this CPU (timed here)"]
    )  # fmt: skip
