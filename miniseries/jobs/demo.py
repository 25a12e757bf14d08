"""The main job: the CPU miniseries end to end, with a budget predicted before it is trained.

  1. data      offline corpus, CORE-20 bundle, tokenizer, token shards (one-time, cached)
  2. sweep     isoFLOP profiles at the fitted budgets (every depth, exactly the FLOPs it buys)
  3. predict   fit the laws on those budgets; predict the held-out (largest) budget's optimum
  4. held out  train the held-out budget's profile; measure its optimum against the prediction
  5. fit       refit the laws on every budget; store the fit (the one-knob run reads it)
  6. series    each depth at the fitted tokens:params ratio, CORE-20 after each run
  7. report    report.md + report.html: laws with intervals, crossing verdict, calibration,
               extrapolation; the headline is printed at the end

Everything lands in a project folder (results store, run folders, report), and rerunning the
demo reuses every finished run. The default budgets and depths are the ones docs/cpu-preset.md
justifies: every run gets hundreds of optimizer steps and every profile's vertex has at least two
sampled depths on each side.
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from miniseries.config import CPU, Preset
from miniseries.errors import UserError


@dataclass
class DemoConfig:
    project: str = "demo"
    preset: Preset = CPU  # resolved once, by the caller (the CLI: --preset)
    # five budgets a quarter decade apart, one decade in all; the smallest is the lowest at which
    # the preset's ratio puts two sampled depths on each side of the optimum (docs/cpu-preset.md)
    fit_budgets: tuple[float, ...] = (2e11, 3.6e11, 6.3e11, 1.1e12)
    heldout_budget: float = 2e12
    # depths per isoFLOP profile, placed by a rule (stored_fits.depth_window): centred on the N*
    # predicted by the fit of the smaller budgets, or by the preset's ratio before there is one
    window: int = 5
    series_depths: tuple[int, ...] = (1, 2, 3, 4, 5)
    convention: str = "total"
    workers: int = 2
    core_cap: int | None = 50  # CORE-20 examples per task (None: no CORE)
    sweep_evals: int = 3
    series_evals: int = 16  # points per series curve: enough to see them run parallel
    # torch.compile: True every run, False none, None the depths where it pays by the rule
    # study/plan_cost.compile_depths (decided from the whole plan, before any run)
    compile: bool | None = None
    n_bootstrap: int = 1000
    min_steps: int | None = None  # skip shorter runs (None: the preset's)
    data: str | None = None  # token shards; None: build the offline corpus and tokenize it
    tokenizer: str | None = None
    overrides: dict = field(default_factory=dict)
    progress: bool = True


def prepare_data(cfg: DemoConfig, log=print) -> tuple[str, str, dict]:
    """(token shards, tokenizer, seconds per step): build what is missing, reuse what is cached."""
    from miniseries.data.build import build_corpus
    from miniseries.data.shards import tokenize_corpus
    from miniseries.data.tokenizer import FILE_NAME, Tokenizer, default_tokenizer_dir

    if cfg.data:
        return cfg.data, cfg.tokenizer, {}
    vocab = cfg.preset.with_overrides(**cfg.overrides).vocab_size
    times = {}
    t = time.time()
    corpus = build_corpus("offline", progress=cfg.progress, log=log)
    times["corpus"] = time.time() - t
    if cfg.core_cap:
        from miniseries.evaluate.offline_bundle import build_offline_bundle

        t = time.time()
        build_offline_bundle(log=log)
        times["core_bundle"] = time.time() - t
    t = time.time()
    tok_dir = default_tokenizer_dir(corpus, vocab)
    if (tok_dir / FILE_NAME).is_file():
        tok = Tokenizer.load(tok_dir, vocab)
    else:
        from miniseries.data.corpus import iter_documents

        log(f"training a {vocab}-token BPE tokenizer on {corpus} ...")
        tok = Tokenizer.train(iter_documents(corpus), vocab)
        tok.save(tok_dir)
    times["tokenizer"] = time.time() - t
    t = time.time()
    tokens = tokenize_corpus(corpus, tok, progress=cfg.progress)
    times["tokenize"] = time.time() - t
    return str(tokens), str(tok_dir), times


def run_demo(cfg: DemoConfig, log=print) -> dict:
    """Run every stage; returns the numbers the headline quotes."""
    from miniseries.laws import fit_laws
    from miniseries.report.project_report import write_report
    from miniseries.store.db import open_store
    from miniseries.study.results import blind_check, measured_optimum
    from miniseries.study.runspec import isoflop_specs, series_specs
    from miniseries.study.series_rule import series_ratios
    from miniseries.study.stored_fits import (
        FIT_KIND,
        depth_window,
        fit_record,
        planned_n_opt,
        runs_for_fit,
    )

    if cfg.heldout_budget <= max(cfg.fit_budgets):
        raise UserError("the held-out budget must be larger than every fitted budget")
    if cfg.window < 3:
        raise UserError(
            f"an isoFLOP profile needs 3 or more depths for a parabola, got {cfg.window}"
        )
    Path(cfg.project).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data, tokenizer, setup = prepare_data(cfg, log)
    common = dict(data=data, tokenizer=tokenizer, overrides=cfg.overrides)
    iso = dict(common, log=log, min_steps=cfg.min_steps, evals=cfg.sweep_evals)
    compiled = compiled_depths(cfg)
    run_kw = dict(workers=cfg.workers, progress=cfg.progress, log=log, compiled=compiled)
    log(f"compiling depths {_fmt(sorted(compiled)) or 'none'} (torch.compile where it pays)")
    stage = {}

    t = time.time()
    sweep_fit_budgets(cfg, iso, run_kw, log)
    stage["sweep"] = time.time() - t

    pred, stored = predict_held_out(cfg, log)
    t = time.time()
    if pred is not None and pred.plan:
        depths = pred.plan["depths"]
    else:  # no prediction: the window falls back on the preset's ratio, as for a first budget
        n_opt, _ = planned_n_opt([], cfg.heldout_budget, cfg.preset, cfg.convention)
        depths = depth_window(n_opt, cfg.preset, cfg.convention, cfg.window)
    log(f"\n== held-out budget {cfg.heldout_budget:.3g}: depths {_fmt(depths)} (by the rule)")
    specs = isoflop_specs([cfg.heldout_budget], depths, cfg.preset, study="held-out", **iso)
    execute_compiled(specs, cfg.project, **run_kw)
    stage["held_out"] = time.time() - t

    with open_store(cfg.project) as store:
        rows = store.list_runs(kind="isoflop", status="done")
        runs = runs_for_fit(rows, cfg.convention)
        measured = measured_optimum(runs, cfg.heldout_budget, cfg.convention)
        held = [r for r in rows if r["budget"] == cfg.heldout_budget]
        blind = blind_check(stored, held)[1] if stored else None
        laws = fit_laws(runs, cfg.convention, cfg.n_bootstrap)
        store.add_fit(FIT_KIND, cfg.convention, fit_record(laws, runs, cfg.n_bootstrap))
    ratio = laws.isoflop.ratio
    if math.isfinite(ratio) and ratio > 0:
        log(f"\n== fitted tokens:params ratio ({cfg.convention}): {ratio:.2f}")
    else:
        ratio = cfg.preset.ratio
        log(f"\n== no usable tokens:params ratio from the fit (see the report); using {ratio}")

    t = time.time()
    ratios, series_rule = series_ratios(laws.isoflop, cfg.series_depths, cfg.preset, cfg.convention)
    log(f"== miniseries: depths {_fmt(cfg.series_depths)}: {series_rule}")
    specs = [
        s for d, r in ratios.items() for s in series_specs(
            [d], r, cfg.preset, study="series", evals=cfg.series_evals,
            convention=cfg.convention, **common,
        )
    ]  # fmt: skip
    execute_compiled(specs, cfg.project, core=cfg.core_cap, **run_kw)
    stage["series"] = time.time() - t

    t = time.time()
    report = write_report(cfg.project, n_bootstrap=cfg.n_bootstrap, convention=cfg.convention)
    stage["report"] = time.time() - t
    total = time.time() - t0
    result = {
        "prediction": pred,
        "stored": stored,
        "blind": blind,
        "measured": measured,
        "laws": laws,
        "ratio": ratio,
        "series_rule": series_rule,
        "series_ratios": ratios,
        "setup_s": setup,
        "stage_s": stage,
        "total_s": total,
        "report": report,
    }
    log("\n" + headline(result))
    return result


def dry_run_stages(cfg: DemoConfig) -> list[tuple[str, list]]:
    """The demo's runs stage by stage (each stage waits for the one before), needing no data.
    Every window is placed by the preset's ratio and the series uses it too: the real demo places
    the windows after the second budget by the fit of the smaller budgets and trains the series at
    the fitted ratio, so those runs are estimates."""
    from miniseries.study.plan_cost import NO_DATA
    from miniseries.study.runspec import isoflop_specs, series_specs
    from miniseries.study.stored_fits import depth_window, planned_n_opt

    preset = cfg.preset.with_overrides(**cfg.overrides)
    common = dict(data=NO_DATA, tokenizer=NO_DATA, overrides=cfg.overrides)
    iso = dict(common, log=lambda _: None, min_steps=cfg.min_steps, evals=cfg.sweep_evals)

    def window(c):
        n_opt, _ = planned_n_opt([], c, preset, cfg.convention)
        return isoflop_specs([c], depth_window(n_opt, preset, cfg.convention, cfg.window),
                             cfg.preset, **iso)  # fmt: skip

    budgets = sorted(cfg.fit_budgets)
    stages = [("sweep", window(budgets[0]) + (window(budgets[1]) if len(budgets) > 1 else []))]
    stages += [("sweep", window(c)) for c in budgets[2:]]
    stages.append(("held out", window(cfg.heldout_budget)))
    series = series_specs(cfg.series_depths, preset.ratio, cfg.preset, evals=cfg.series_evals,
                          convention=cfg.convention, **common)  # fmt: skip
    stages.append(("series", series))
    compiled = _compiled_from(cfg, [s for _, specs in stages for s in specs])
    for _, specs in stages:
        for s in specs:
            s.compile = s.depth in compiled
    return stages


def _compiled_from(cfg: DemoConfig, specs) -> set[int]:
    from miniseries.study.plan_cost import compile_depths

    if cfg.compile is None:
        return compile_depths(specs)
    return {s.depth for s in specs} if cfg.compile else set()


def compiled_depths(cfg: DemoConfig) -> set[int]:
    """The depths the demo compiles: decided once, from the plan `demo --dry-run` prints."""
    return {s.depth for _, specs in dry_run_stages(cfg) for s in specs if s.compile}


def execute_compiled(specs, project, compiled: set[int], **kw):
    """Train ``specs`` (study/sweep.execute), each compiled when its depth is in ``compiled``."""
    from miniseries.study.sweep import execute

    for s in specs:
        s.compile = s.depth in compiled
    return execute(specs, project, **kw)


def sweep_fit_budgets(cfg: DemoConfig, iso: dict, run_kw: dict, log=print) -> None:
    """Sweep the fitted budgets, smallest first, each over the rule's window of depths. A budget
    with fewer than two smaller budgets has no fit to place it and uses the preset's ratio, so
    those are swept together; every later budget waits for the fit of the ones below it."""
    from miniseries.store.db import open_store
    from miniseries.study.runspec import isoflop_specs
    from miniseries.study.stored_fits import depth_window, planned_n_opt, runs_for_fit

    preset, batch = cfg.preset, []
    budgets = sorted(cfg.fit_budgets)
    for i, c in enumerate(budgets):
        if i >= 2 and batch:  # the fit of the smaller budgets needs them trained first
            execute_compiled(batch, cfg.project, **run_kw)
            batch = []
        with open_store(cfg.project) as store:
            runs = runs_for_fit(store.list_runs(kind="isoflop", status="done"), cfg.convention)
        n_opt, source = planned_n_opt(runs, c, preset, cfg.convention)
        depths = depth_window(n_opt, preset, cfg.convention, cfg.window)
        log(f"\n== isoFLOP budget {c:.3g}: depths {_fmt(depths)} around N* {n_opt:,.0f} ({source})")
        batch += isoflop_specs([c], depths, cfg.preset, study="fit", **iso)
    execute_compiled(batch, cfg.project, **run_kw)


def predict_held_out(cfg: DemoConfig, log=print):
    """(prediction, its stored row) for the held-out budget. The first prediction stored for it
    is the one judged: a rerun finds it and never makes another (predictions never change)."""
    from miniseries.formatting import fmt_interval
    from miniseries.laws.base import Prediction
    from miniseries.store.db import open_store
    from miniseries.study.results import held_out_prediction
    from miniseries.study.seed_noise import seed_noise

    key = f"budget:{cfg.heldout_budget:g}"
    with open_store(cfg.project) as store:
        stored = store.first_prediction(key)
        if stored is None:
            rows = store.list_runs(kind="isoflop", status="done")
            try:
                pred = held_out_prediction(
                    rows, cfg.heldout_budget, cfg.convention, cfg.n_bootstrap,
                    preset=cfg.preset, window=cfg.window,
                    noise=seed_noise(cfg.project),
                )  # fmt: skip
            except UserError as e:  # say so, go on: the report shows the profiles that caused it
                log(f"\n== no prediction for the held-out budget: {e}")
                return None, None
            store.add_prediction(key, pred.to_dict())
            stored = store.first_prediction(key)
            made = "made now, before training it"
        else:
            made = "stored earlier; a stored prediction never changes"
    pred = Prediction.from_dict(stored["predicted"])
    log(
        f"\n== prediction #{stored['prediction_id']} for the held-out budget "
        f"{cfg.heldout_budget:.3g} FLOPs ({made}; {stored['created_at']}): N* "
        f"{pred.n_opt.point:,.0f} params ({cfg.convention}), D* {pred.d_opt.point:,.0f} tokens; "
        f"optimal val bpb {fmt_interval(pred.loss, '.4f', label=True)} (the law); the measured "
        f"vertex: {fmt_interval(pred.outcome, '.4f', label=True)}"
    )
    for line in alternative_lines(pred):
        log(line)
    return pred, stored


def alternative_lines(pred, measured: float | None = None) -> list[str]:
    """One line per route or form stored beside a prediction (laws/base.py ``alternatives``)."""
    out = []
    for alt in pred.alternatives:
        line = f"  also stored: {alt.method}: N* {alt.n_opt.point:,.0f}"
        if alt.loss is not None:
            line += f", L* {alt.loss.point:.4f}"
            if measured:
                line += f" ({(alt.loss.point - measured) / measured:+.2%})"
        out.append(line)
    return out


def _flag_note(meas: dict) -> str:
    flags = meas.get("flags")
    return f" (measured vertex flagged: {'; '.join(flags)})" if flags else ""


def headline(result: dict) -> str:
    """What the demo prints last: where the report is, the laws, the verdicts, the timings."""
    from miniseries.formatting import fmt_interval

    report = result["report"]
    lines = [f"report: {report.html_path}  (and {report.md_path})"]
    lines += [f"  {line}" for line in report.headline]
    pred, meas = result["prediction"], result["measured"]
    if pred and meas:
        err = (pred.loss.point - meas["loss"]) / meas["loss"]
        lines.append(
            f"  held-out budget {pred.budget:.3g}: predicted optimal bpb {pred.loss.point:.4f}, "
            f"measured {meas['loss']:.4f} ({err:+.2%}); predicted N* {pred.n_opt.point:,.0f}, "
            f"measured {meas['n_opt']:,.0f}" + _flag_note(meas)
        )
        if pred.outcome is not None:
            where = "inside" if pred.outcome.contains(meas["loss"]) else "OUTSIDE"
            lines.append(
                f"  judged against the {pred.outcome.label} of the measured vertex "
                f"{fmt_interval(pred.outcome, '.4f')}: {where} (the law's "
                f"{pred.loss.label}: {fmt_interval(pred.loss, '.4f')})"
            )
        lines += [f"  {line}" for line in alternative_lines(pred, meas["loss"])]
    if result.get("series_rule"):
        lines.append(f"  miniseries trained at: {result['series_rule']}")
    blind = result.get("blind")
    if blind:
        lines.append(f"  {blind}")
    stage = result["stage_s"]
    train = sum(stage.values())
    setup = ", ".join(f"{k} {v:.0f} s" for k, v in result["setup_s"].items())
    lines.append(
        f"  time: training + evaluation + fitting {train / 60:.1f} min ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in stage.items())
        + (f"); one-time setup: {setup}" if setup else ")")
    )
    return "\n".join(lines)


def _fmt(values) -> str:
    return ", ".join(f"{v:g}" for v in values)
