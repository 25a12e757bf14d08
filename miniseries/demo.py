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

from miniseries.errors import UserError


@dataclass
class DemoConfig:
    project: str = "demo"
    preset: str = "cpu"
    fit_budgets: tuple[float, ...] = (2e11, 3e11, 4.5e11)
    heldout_budget: float = 7e11
    # one window of depths per fitted budget, centred on where its optimum falls (two or more
    # depths on each side); d1 is left out at 4.5e11, where it is far from the optimum, costs the
    # most wall time (4,768 steps) and has stopped improving (it only adds noise to the profile)
    fit_depths: tuple[tuple[int, ...], ...] = ((1, 2, 3, 4, 5), (1, 2, 3, 4, 5), (2, 3, 4, 5, 6))
    heldout_depths: tuple[int, ...] = (2, 3, 4, 5, 6)
    series_depths: tuple[int, ...] = (1, 2, 3, 4, 5)
    convention: str = "total"
    workers: int = 2
    core_cap: int | None = 50  # CORE-20 examples per task (None: no CORE)
    sweep_evals: int = 3
    series_evals: int = 6
    n_bootstrap: int = 1000
    min_steps: int | None = None  # skip shorter runs (None: the preset's)
    data: str | None = None  # token shards; None: build the offline corpus and tokenize it
    tokenizer: str | None = None
    overrides: dict = field(default_factory=dict)
    progress: bool = True


def prepare_data(cfg: DemoConfig, log=print) -> tuple[str, str, dict]:
    """(token shards, tokenizer, seconds per step): build what is missing, reuse what is cached."""
    from miniseries.config import get_preset
    from miniseries.data.build import build_corpus
    from miniseries.data.shards import tokenize_corpus
    from miniseries.tokenizer import FILE_NAME, Tokenizer, default_tokenizer_dir

    if cfg.data:
        return cfg.data, cfg.tokenizer, {}
    vocab = get_preset(cfg.preset).with_overrides(**cfg.overrides).vocab_size
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
    from miniseries.config import get_preset
    from miniseries.fits import FIT_KIND, fit_record, runs_for_fit
    from miniseries.laws import fit_laws
    from miniseries.render import fmt_interval
    from miniseries.report import write_report
    from miniseries.runspec import isoflop_specs, series_specs
    from miniseries.store import open_store
    from miniseries.study import held_out_prediction, measured_optimum
    from miniseries.sweep import execute

    if cfg.heldout_budget <= max(cfg.fit_budgets):
        raise UserError("the held-out budget must be larger than every fitted budget")
    if len(cfg.fit_depths) != len(cfg.fit_budgets):
        raise UserError("give one window of depths per fitted budget")
    Path(cfg.project).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data, tokenizer, setup = prepare_data(cfg, log)
    common = dict(data=data, tokenizer=tokenizer, overrides=cfg.overrides)
    iso = dict(common, log=log, min_steps=cfg.min_steps, evals=cfg.sweep_evals)
    run_kw = dict(workers=cfg.workers, progress=cfg.progress, log=log)
    stage = {}

    t = time.time()
    windows = zip(cfg.fit_budgets, cfg.fit_depths)
    log("\n== isoFLOP sweep: " + "; ".join(f"{c:.3g} x depths {_fmt(d)}" for c, d in windows))
    specs = [
        spec
        for c, depths in zip(cfg.fit_budgets, cfg.fit_depths)
        for spec in isoflop_specs([c], depths, cfg.preset, study="fit", **iso)
    ]
    execute(specs, cfg.project, **run_kw)
    stage["sweep"] = time.time() - t

    pred = None
    with open_store(cfg.project) as store:
        rows = store.list_runs(kind="isoflop", status="done")
        try:
            pred = held_out_prediction(rows, cfg.heldout_budget, cfg.convention, cfg.n_bootstrap)
        except UserError as e:  # say so, go on: the report shows the profiles that caused it
            log(f"\n== no prediction for the held-out budget: {e}")
        if pred:
            store.add_prediction(f"budget:{cfg.heldout_budget:g}", pred.to_dict())
    if pred:
        log(
            f"\n== prediction for the held-out budget {cfg.heldout_budget:.3g} FLOPs, made before "
            f"training it: N* {pred.n_opt.point:,.0f} params ({cfg.convention}), D* "
            f"{pred.d_opt.point:,.0f} tokens, val bpb {fmt_interval(pred.loss, '.4f', label=True)}"
        )

    t = time.time()
    specs = isoflop_specs(
        [cfg.heldout_budget], cfg.heldout_depths, cfg.preset, study="held-out", **iso
    )
    execute(specs, cfg.project, **run_kw)
    stage["held_out"] = time.time() - t

    with open_store(cfg.project) as store:
        rows = store.list_runs(kind="isoflop", status="done")
        runs = runs_for_fit(rows, cfg.convention)
        measured = measured_optimum(runs, cfg.heldout_budget, cfg.convention)
        laws = fit_laws(runs, cfg.convention, cfg.n_bootstrap)
        store.add_fit(FIT_KIND, cfg.convention, fit_record(laws, runs, cfg.n_bootstrap))
    ratio = laws.isoflop.ratio
    if math.isfinite(ratio) and ratio > 0:
        log(f"\n== fitted tokens:params ratio ({cfg.convention}): {ratio:.2f}")
    else:
        ratio = get_preset(cfg.preset).ratio
        log(f"\n== no usable tokens:params ratio from the fit (see the report); using {ratio}")

    t = time.time()
    log(f"== miniseries: depths {_fmt(cfg.series_depths)} at ratio {ratio:.2f}")
    specs = series_specs(
        cfg.series_depths, ratio, cfg.preset, study="series", evals=cfg.series_evals,
        convention=cfg.convention, **common,
    )  # fmt: skip
    execute(specs, cfg.project, core=cfg.core_cap, **run_kw)
    stage["series"] = time.time() - t

    t = time.time()
    report = write_report(cfg.project, n_bootstrap=cfg.n_bootstrap, convention=cfg.convention)
    stage["report"] = time.time() - t
    total = time.time() - t0
    result = {
        "prediction": pred,
        "measured": measured,
        "laws": laws,
        "ratio": ratio,
        "setup_s": setup,
        "stage_s": stage,
        "total_s": total,
        "report": report,
    }
    log("\n" + headline(result))
    return result


def headline(result: dict) -> str:
    """What the demo prints last: where the report is, the laws, the verdicts, the timings."""
    report = result["report"]
    lines = [f"report: {report.html_path}  (and {report.md_path})"]
    lines += [f"  {line}" for line in report.headline]
    pred, meas = result["prediction"], result["measured"]
    if pred and meas:
        err = (pred.loss.point - meas["loss"]) / meas["loss"]
        lines.append(
            f"  held-out budget {pred.budget:.3g}: predicted optimal bpb {pred.loss.point:.4f}, "
            f"measured {meas['loss']:.4f} ({err:+.2%}); predicted N* {pred.n_opt.point:,.0f}, "
            f"measured {meas['n_opt']:,.0f}"
        )
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
