"""An ablation as two lines: tune each arm's learning rate, run the same isoFLOP design for both,
compare the two fitted families (miniseries/laws/compare.py), and write down what it says.

The shipped one is ``optimizer``: Muon (the baseline) against AdamW everywhere, the question
nanochat left open — is the compute-optimal tokens:params ratio of ~8 (Chinchilla: ~20) Muon's
doing, or an artifact of small scale? Both arms get:

1. their own LR sweep over the design's depths (first, middle, last), at a grid wide enough for
   either optimizer; the arm then trains at the sweep's common multiplier;
2. the same isoFLOP design: every budget's window of depths from the rule stored_fits.depth_window,
   centred on the preset ratio's N* (the same for both arms: neither arm's fit places it);
3. the comparison (a, b, the ratio under each convention, their differences, the effective
   compute multiplier) and the report, whose comparison section draws both lines.

Resumable like every sweep: rerun the same command and finished runs are reused.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

from miniseries.config import CPU, Preset
from miniseries.errors import UserError

# what an ablation varies -> its arms, baseline first: (study name, run settings)
ARMS = {"optimizer": (("muon", {"optimizer": "muon"}), ("adamw", {"optimizer": "adamw"}))}
LR_MULTS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 4.0)  # wide: AdamW's best may sit far from 1


@dataclass
class AblationConfig:
    project: str = "ablation"
    preset: Preset = CPU  # resolved once, by the caller (the CLI)
    budgets: tuple[float, ...] = (2e11, 3e11, 4.5e11)
    window: int = 6  # depths per profile: room on both sides if an arm moves the optimum
    lr_steps: int = 300
    lr_mults: tuple[float, ...] = LR_MULTS
    workers: int = 2
    n_bootstrap: int = 1000
    evals: int = 3
    min_steps: int | None = None  # skip shorter runs (None: the preset's)
    convention: str = "total"
    data: str | None = None  # token shards; None: the offline corpus (built once, cached)
    tokenizer: str | None = None
    overrides: dict = field(default_factory=dict)
    progress: bool = True
    core_cap: int | None = None  # no CORE: the question is about the loss


def design(cfg: AblationConfig) -> dict[float, list[int]]:
    """The isoFLOP design both arms train: each budget's window, by the rule, around the N* the
    preset's ratio gives (no arm's fit places it)."""
    from miniseries.study.stored_fits import depth_window, planned_n_opt

    preset = cfg.preset.with_overrides(**cfg.overrides)
    out = {}
    for c in sorted(cfg.budgets):
        n_opt, _ = planned_n_opt([], c, preset, cfg.convention)
        out[c] = depth_window(n_opt, preset, cfg.convention, cfg.window)
    return out


def run_ablation(cfg: AblationConfig, what: str = "optimizer", log=print) -> dict:
    """Tune, sweep and compare both arms; write the report and PROJECT/ablation.md."""
    # numpy and the pipeline load here and in the functions below, not when the CLI builds its
    # --help (which reads this module's ARMS and AblationConfig)
    from miniseries.jobs.demo import prepare_data
    from miniseries.jobs.lr_sweep import default_depths, lr_sweep_specs, run_lr_sweep
    from miniseries.laws.compare import format_comparison
    from miniseries.paths import atomic_write_text
    from miniseries.report.project_report import write_report
    from miniseries.study.compare_sides import compare_inputs
    from miniseries.study.runspec import isoflop_specs
    from miniseries.study.sweep import execute

    if what not in ARMS:
        raise UserError(f"unknown ablation {what!r}; choose from {', '.join(ARMS)}")
    Path(cfg.project).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data, tokenizer, _ = prepare_data(cfg, log)
    windows = design(cfg)
    lr_depths = default_depths(sorted({d for ds in windows.values() for d in ds}))
    common = dict(data=data, tokenizer=tokenizer, overrides=cfg.overrides)
    tuned, specs = {}, []
    for arm, settings in ARMS[what]:
        log(f"\n== {arm}: LR sweep over depths {lr_depths} ({len(cfg.lr_mults)} multipliers)")
        sweep_specs = lr_sweep_specs(
            lr_depths, cfg.lr_steps, cfg.lr_mults, "all", cfg.preset, data, tokenizer,
            cfg.overrides, optimizer=settings["optimizer"],
        )  # fmt: skip
        sweep = run_lr_sweep(sweep_specs, "all", cfg.project, cfg.workers, cfg.progress)
        lr = float(f"{sweep.verdict.common_lr:.3g}")
        tuned[arm] = (lr, sweep.verdict.summary())
        log(f"{arm}: {sweep.verdict.summary()}; trains at LR x{lr:g}")
        for c, depths in windows.items():
            specs += isoflop_specs(
                [c], depths, cfg.preset, study=arm, lr_mult=lr, evals=cfg.evals, log=log,
                min_steps=cfg.min_steps, **settings, **common,
            )  # fmt: skip
    log(f"\n== isoFLOP design for both arms: {len(specs)} runs")
    execute(specs, cfg.project, workers=cfg.workers, progress=cfg.progress, log=log)
    base, other = (arm for arm, _ in ARMS[what])
    try:
        comparison = compare_inputs(base, other, cfg.project, cfg.convention, cfg.n_bootstrap)
    except UserError as e:  # an arm whose profiles give no law: say why, keep everything
        comparison, why = None, str(e)
    report = write_report(cfg.project, n_bootstrap=cfg.n_bootstrap, convention=cfg.convention)
    wall = time.time() - t0
    if comparison is None:
        text = f"# Ablation: {what} ({base} vs {other})\n\nNo comparison: {why}.\n"
        log(f"\n== no comparison: {why}")
    else:
        text = ablation_markdown(what, comparison, tuned, windows, wall)
        log("\n" + format_comparison(comparison))
    atomic_write_text(Path(cfg.project) / "ablation.md", text)
    log(f"\nablation: {Path(cfg.project) / 'ablation.md'}; report: {report.html_path}")
    return {"comparison": comparison, "tuned": tuned, "wall_s": wall, "report": report}


def ablation_markdown(what, c, tuned: dict, windows: dict, wall_s: float) -> str:
    """The answer at this scale (``c``: a compare.Comparison), in words decided by the
    intervals (a rule, not a reading)."""
    from miniseries.formatting import fmt_interval
    from miniseries.laws.base import n_label

    a, b = c.names
    fa, fb = c.fits if len(c.fits) == 2 else (None, None)
    lines = [
        f"# Ablation: {what} ({a} vs {b})",
        "",
        f"Wall time {wall_s / 60:.1f} min. Design for both arms (budget: depths): "
        + "; ".join(f"{k:.3g}: {v[0]}-{v[-1]}" for k, v in windows.items())
        + ".",
        "",
        "LRs each arm trained at (its own LR sweep's common multiplier):",
        "",
        *(f"- {arm}: x{lr:g} ({summary})" for arm, (lr, summary) in tuned.items()),
        "",
        f"Parameter counts: {n_label(c.convention)}; intervals are 90% CIs of the fitted laws.",
        "",
        "| | " + a + " | " + b + " | " + b + " vs " + a + " |",
        "|---|---:|---:|---:|",
        f"| a | {fmt_interval(c.lines[0].a)} | {fmt_interval(c.lines[1].a)} | "
        f"{fmt_interval(c.a_diff)} |",
        f"| b | {fmt_interval(c.lines[0].b)} | {fmt_interval(c.lines[1].b)} | "
        f"{fmt_interval(c.b_diff)} |",
    ]
    for r in c.ratios:
        lines.append(
            f"| D*/N* at {c.budget:.3g} ({r.convention}) | {fmt_interval(r.ratio_a, '.3g')} | "
            f"{fmt_interval(r.ratio_b, '.3g')} | ×{fmt_interval(r.b_over_a)} |"
        )
    if fa is not None and fb is not None and fa.n_law and fb.n_law:
        lines.append(
            f"| ratio trend b − a | {fmt_interval(fa.ratio_trend_interval)} | "
            f"{fmt_interval(fb.ratio_trend_interval)} | |"
        )
    h = c.headline
    lines += [
        "",
        f"Effective compute multiplier at {h.budget:.3g} FLOPs: {b} needs "
        f"{fmt_interval(h.m, label=True)} times the compute of {a} to reach {a}'s optimal loss.",
        "",
        "## What it says",
        "",
        *_reading(c, fa, fb),
    ]
    return "\n".join(lines) + "\n"


def _reading(c, fa, fb) -> list[str]:
    from miniseries.formatting import fmt_interval

    a, b = c.names
    r = c.ratio_b_over_a
    out = []
    if not r.bounded:
        out.append("- The ratio of ratios has no interval (too few resamples): no reading.")
    elif r.contains(1.0):
        out.append(
            f"- The tokens:params ratio under {b} is not resolved from {a}'s at this scale "
            f"(B/A {fmt_interval(r, label=True)} contains 1): no evidence here that the "
            "optimizer moves the ratio."
        )
    else:
        more = b if r.lo > 1 else a
        out.append(
            f"- {more} wants more tokens per parameter (B/A {fmt_interval(r, label=True)}): "
            + (
                f"{a} prefers bigger models trained shorter, as the 'Muon' explanation says."
                if more == b
                else "the opposite of the 'Muon prefers bigger models' explanation."
            )
        )
    for name, fit in ((a, fa), (b, fb)):
        if fit is None or not fit.n_law:
            continue
        t = fit.ratio_trend_interval
        if t.bounded and not t.contains(0.0):
            out.append(
                f"- Under {name} the ratio changes with compute (b − a {fmt_interval(t)}): "
                "a ratio measured at this scale does not carry to larger ones — the 'scale "
                "artifact' explanation has room here."
            )
        else:
            out.append(
                f"- Under {name} the ratio's trend with compute is not resolved (b − a "
                f"{fmt_interval(t)} contains 0)."
            )
    out.append(
        "- What it does not say: anything about scales far above the sampled budgets; the "
        "multiplier and ratios hold where the lines were measured."
    )
    return out
