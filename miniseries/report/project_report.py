"""The report of a project: PROJECT/report.md, a self-contained PROJECT/report.html, and the
figures in PROJECT/report/*.png, all from the results store.

Every section reads the store, fits what it can and says so; a section whose runs do not exist yet
says which command makes them instead of failing. The headline is filled in by the sections as
they go (the fitted exponents, the crossing verdict, the held-out check, the LR transfer), so the
first screen of the report answers "did it work?". The tables are built in
``miniseries.report.tables`` and rendered to Markdown and HTML by ``miniseries.report.render``.
No torch here: a report can be made on a laptop from a store copied off a GPU box.
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from miniseries.config import CONVENTIONS, check_convention
from miniseries.errors import UserError
from miniseries.evaluate.bundle import CORE_TASKS
from miniseries.formatting import fmt_interval
from miniseries.laws.base import CONVENTION_NAMES, LEVEL, Prediction, group_budgets, n_label
from miniseries.laws.crossing import CORE_TOL, LOSS_TOL, Curve, check
from miniseries.laws.isoflop import fit_isoflop
from miniseries.laws.lr_transfer import transfer_check
from miniseries.laws.parametric import fit_parametric
from miniseries.paths import atomic_write_text
from miniseries.report import tables as rt
from miniseries.report.calibrate import calibrate_gpt3, core_standard_error, fit_series
from miniseries.report.extrapolate import ScalingLaws, extrapolation_table
from miniseries.report.ledger_section import ledger_sections
from miniseries.report.plots import (
    plot_budget_curves,
    plot_compare,
    plot_curves,
    plot_isoflop,
    plot_lr_sweep,
    plot_optima,
    plot_series,
)
from miniseries.report.render import Section, to_html, to_markdown
from miniseries.study.compare_sides import compare_inputs, studies_to_compare
from miniseries.study.results import (
    Study,
    blind_check,
    default_convention,
    held_out_prediction,
    load_study,
    measured_optimum,
)
from miniseries.study.stored_fits import runs_for_fit

# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class Context:
    """What the sections share: the study, the options, where figures go, and the headline."""

    study: Study
    convention: str
    n_bootstrap: int
    hardware: object
    figdir: Path
    headline: dict = field(default_factory=dict)  # key in HEADLINE_ORDER -> one line
    fits: dict = field(default_factory=dict)  # convention -> ScalingFit
    iso_runs: list = field(default_factory=list)  # laws.Run under the chosen convention


@dataclass
class Report:
    md_path: Path
    html_path: Path
    headline: list
    sections: list


def build_report(project, out=None, n_bootstrap=1000, convention=None, hardware=None):
    """Write report.md, report.html and report/*.png; returns (md_path, html_path)."""
    r = write_report(project, out, n_bootstrap, convention, hardware)
    return r.md_path, r.html_path


def write_report(project, out=None, n_bootstrap=1000, convention=None, hardware=None) -> Report:
    """build_report, returning the headline lines and section titles as well (for the CLI)."""
    if n_bootstrap < 0:
        raise UserError(f"bootstrap resamples must be >= 0 (0 skips intervals), got {n_bootstrap}")
    study = load_study(project)
    conv = (
        check_convention(convention) if convention is not None else default_convention(study.runs)
    )
    have = conventions_available(study.done("isoflop"))
    if have and conv not in have:
        if convention:
            raise UserError(
                f"the isoFLOP runs have no params_{conv} counts; use --convention "
                f"{' or '.join(have)}"
            )
        conv = have[0]
    out = Path(out) if out is not None else study.project
    ctx = Context(study, conv, n_bootstrap, hardware, out / "report")
    ctx.iso_runs = runs_for_fit(study.done("isoflop"), conv)
    sections = [
        runs_section(ctx),
        laws_section(ctx),
        held_out_section(ctx),
        crossing_section(ctx),
        curves_section(ctx),
        lr_section(ctx),
        core_section(ctx),
        calibration_section(ctx),
        predictions_section(ctx),
        comparison_section(ctx),
        *ledger_sections(study.project),
        notes_section(conv),
    ]
    headline = [ctx.headline[k] for k in HEADLINE_ORDER if k in ctx.headline]
    head = Section("headline", "Headline")
    head.ul(headline or ["nothing trained yet: " + study.hint("isoflop")])
    sections.insert(0, head)
    n_done = sum(r["status"] == "done" for r in study.runs)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    intro = [
        f"project `{study.project}` · {len(study.runs)} runs ({n_done} done) · params counted: "
        f"**{n_label(conv)}** · intervals: bootstrap {LEVEL:.0%} ({n_bootstrap} resamples) · "
        f"{stamp}"
    ]
    title = f"miniseries report: {study.project.resolve().name}"
    md_path, html_path = out / "report.md", out / "report.html"
    atomic_write_text(md_path, to_markdown(title, intro, sections, out))
    atomic_write_text(html_path, to_html(title, intro, sections))
    return Report(md_path, html_path, headline, [s.title for s in sections])


HEADLINE_ORDER = ("laws", "crossing", "held_out", "lr", "core", "extrapolation")


def budget_curves(ctx: Context) -> list[tuple[float, Curve]]:
    """(budget, validation curve) of every finished isoFLOP run that has one."""
    rows = [r for r in ctx.study.done("isoflop") if r.get("budget")]
    pairs = ((float(r["budget"]), curve_of(ctx.study, r)) for r in rows)
    return [(b, c) for b, c in pairs if c is not None]


def curve_of(study: Study, row: dict) -> Curve | None:
    """A run's val bpb vs FLOPs (its final point if no curve was recorded)."""
    pts = [
        (p["flops"], p["val_bpb"])
        for p in study.curves.get(row["run_id"], [])
        if p["flops"] and p["val_bpb"] is not None
    ]
    if not pts and row.get("flops") and row.get("val_bpb") is not None:
        pts = [(row["flops"], row["val_bpb"])]
    if not pts:
        return None
    f, y = zip(*sorted(pts))
    name = f"d{row['depth']}" if row.get("depth") is not None else row["run_id"]
    return Curve(name, tuple(f), tuple(y), row.get("core"))


def conventions_available(rows: list[dict]) -> list[str]:
    """Conventions every finished isoFLOP run has a parameter count for."""
    return [c for c in CONVENTIONS if rows and all(r.get(f"params_{c}") for r in rows)]


def parametric_or_none(ctx: Context):
    """The parametric fit under the chosen convention, or (None, reason)."""
    runs = ctx.iso_runs
    if len(runs) < 6 or len(group_budgets(runs)) < 2:
        return None, f"needs 6 runs over 2+ budgets, have {len(runs)}"
    try:
        return fit_parametric(runs, ctx.convention, ctx.n_bootstrap), None
    except UserError as e:
        return None, str(e)


# ---------------------------------------------------------------------------------------------
# Sections, in the order the report shows them


def runs_section(ctx: Context) -> Section:
    s = Section("runs", "Runs")
    rows, conv = ctx.study.runs, ctx.convention
    if not rows:
        s.p(ctx.study.hint("isoflop"))
        return s
    s.p(
        f"{len(rows)} runs. params: {n_label(conv)}; FLOPs: training compute; val bpb: bits per "
        "byte on the fixed validation set; wall: seconds from start to finish."
    )
    series = sorted((r for r in rows if r["kind"] == "series" and r.get(f"params_{conv}")),
                    key=lambda r: r["depth"])  # fmt: skip
    if series:
        ratios = [r["tokens"] / r[f"params_{conv}"] for r in series]
        per = ", ".join(f"d{r['depth']} {x:.2f}" for r, x in zip(series, ratios))
        how = ("one ratio for every depth" if max(ratios) / min(ratios) < 1.02
               else "each depth at the ratio the law gives at its own compute")  # fmt: skip
        s.p(f"The miniseries trained at tokens:params ({n_label(conv)}): {how}: {per}.")
    order = {k: i for i, k in enumerate(("isoflop", "series", "lr_sweep", "one_knob", "single"))}
    rows = sorted(rows, key=lambda r: (order.get(r["kind"], 9), r["budget"] or 0, r["depth"] or 0))
    s.table(*rt.runs_table(rows, conv))
    return s


def laws_section(ctx: Context) -> Section:
    s = Section("laws", "Scaling laws")
    rows = ctx.study.done("isoflop")
    if not rows:
        s.p(ctx.study.hint("isoflop"))
        return s
    for c in conventions_available(rows):
        ctx.fits[c] = fit_isoflop(runs_for_fit(rows, c), c, ctx.n_bootstrap)
    fit, conv = ctx.fits[ctx.convention], ctx.convention
    s.p(
        f"isoFLOP vertices ({n_label(conv)}; loss = validation bpb): per budget, a parabola of "
        "bpb against log10 N; its vertex is the compute-optimal size. Flagged vertices are left "
        "out of the power laws."
    )
    s.table(*rt.vertex_table(fit))
    s.p(
        "N* = k·C^a and D* = k'·C^b across budgets, refitted under **each** parameter-count "
        "convention: the ratio depends strongly on what is counted, and at small scale, where "
        "embeddings are much of a model, so do the exponents."
    )
    s.table(*rt.laws_table(ctx.fits, conv))
    if fit.resample_note():
        s.p(fit.resample_note().capitalize() + ".")
    if fit.n_law is not None:
        ctx.headline["laws"] = (
            f"**a = {fmt_interval(fit.n_law.interval)}**, "
            f"**b = {fmt_interval(fit.d_law.interval)}**, tokens:params "
            f"**{fmt_interval(fit.ratio_interval, '.3g')}** at C = "
            f"{fit.ratio_budget:.2g} (N counts {CONVENTION_NAMES[conv]}; "
            f"{fit.ratio_interval.label}s of the fitted laws)"
        )
    else:
        ctx.headline["laws"] = "scaling laws: fewer than 2 usable isoFLOP budgets (see flags)"
    par, why = parametric_or_none(ctx)
    if par is None:
        s.p(f"Parametric fit L(N, D) = E + A/N^α + B/D^β: not fitted ({why}).")
    else:
        s.p(
            f"Parametric fit L(N, D) = E + A/N^α + B/D^β on {par.n_runs} runs ({n_label(conv)}; "
            "Huber on log-loss residuals, as Chinchilla/Epoch AI):"
        )
        s.table(*rt.parametric_table(par))
    if any(math.isfinite(v.coeffs[0]) for v in fit.vertices):
        s.img(
            plot_isoflop(fit, ctx.figdir / "isoflop.png", ylabel="validation bits per byte"),
            "isoFLOP profiles; star = vertex, cross = flagged vertex",
        )
        if fit.n_law is not None:
            s.img(
                plot_optima(fit, ctx.figdir / "optima.png"),
                f"compute-optimal N* and D* vs budget ({n_label(conv)})",
            )
    return s


def held_out_section(ctx: Context) -> Section:
    s = Section("held-out", "Held-out prediction")
    stored = [p for p in ctx.study.predictions if p["run_id"].startswith("budget:")]
    first = {}  # the earliest prediction per budget is the one judged (later ones are listed)
    for p in stored:
        first.setdefault(p["run_id"], p)
    fit = ctx.fits.get(ctx.convention)
    if not first and fit is not None and sum(v.usable for v in fit.vertices) >= 3:
        top = max(v.budget for v in fit.vertices if v.usable)
        window = [r.params for r in ctx.iso_runs if r.budget == top]
        p = held_out_prediction(
            ctx.iso_runs, top, ctx.convention, ctx.n_bootstrap, window_params=window
        )
        s.p(
            f"Retrospective: the laws fitted now on the budgets below {top:.3g} predict its "
            "optimum. This was not stored before training, so it is **not a blind test**."
        )
        first = {f"budget:{top:g}": {"predicted": p.to_dict(), "prediction_id": None}}
    if not first:
        s.p(
            "No held-out budget: needs a prediction stored before training a budget, or 3 "
            "usable isoFLOP budgets. " + ("" if fit else ctx.study.hint("isoflop"))
        )
        return s
    s.p(
        "The laws fitted on the smaller budgets predict a larger budget's optimum before it is "
        "trained; measured = parabola vertex over that budget's runs. The prediction interval "
        "(PI) is where that measured vertex should land (the law's uncertainty plus run noise, "
        "the scatter of vertices around the law, and the parametric form beside the isoFLOP "
        "one); the law's confidence interval (CI) is shown beside it."
    )
    rows, done = [], ctx.study.done("isoflop")
    for key, row in first.items():
        p = Prediction.from_dict(row["predicted"])
        conv = p.convention
        meas = measured_optimum(runs_for_fit(done, conv), p.budget, conv)
        cells, line = rt.held_out_row(p, meas)
        rows.append(cells)
        if row["prediction_id"] is not None:
            judged = [
                r for r in ctx.study.runs if r["kind"] == "isoflop" and r["budget"] == p.budget
            ]
            ok, text = blind_check(row, judged)
            s.verdict(ok, text)
            line = line and f"{line}; {'blind' if ok else 'NOT BLIND'}"
            later = sum(1 for x in stored if x["run_id"] == key) - 1
            if later:
                s.p(f"({later} later prediction(s) for {key} are kept too; the first is judged.)")
        if line:
            ctx.headline["held_out"] = line
    s.table(rt.held_out_columns(ctx.convention), rows)
    return s


def crossing_section(ctx: Context) -> Section:
    s = Section("crossing", "Crossing detector")
    curves = [c for c in (curve_of(ctx.study, r) for r in ctx.study.done("series")) if c]
    if not ctx.iso_runs and not curves:
        s.p(ctx.study.hint("isoflop"))
        return s

    # CORE measured on a capped number of examples is noisy: two runs' CORE differ by chance by
    # ~sqrt(2) standard errors, so only a drop beyond twice that counts as a crossing.
    se = _series_points(ctx)[3] if curves else None
    core_tol = max(CORE_TOL, 2 * math.sqrt(2) * max(se)) if se else CORE_TOL
    v = check(runs=ctx.iso_runs or None, curves=curves or None, core_tol=core_tol)
    s.verdict(v.ok, v.summary())
    ctx.headline["crossing"] = v.headline()
    s.p(
        "Checked: isoFLOP profiles nested (more compute, lower bpb at every shared size: each "
        "run of a bigger budget against a smaller budget's parabola, beyond a tolerance scaled "
        "by the profiles' measured scatter and by the number of comparisons; the verdict above "
        "names the bins and the numbers, docs/crossing.md the rules); the miniseries' final bpb "
        "falls and CORE rises with compute; its training curves never cross at equal fractions "
        "of their runs after a 20% burn-in. Miniseries tolerances: "
        f"{LOSS_TOL:g} bpb (twice the measured seed-to-seed spread) and {core_tol:.3f} CORE "
        "(twice the binomial standard error of a difference, from the examples evaluated)."
    )
    if not v.ok:
        cols, rows = rt.violations_table(v.violations)
        s.table(cols, rows)
        if len(v.violations) > len(rows):
            s.p(f"({len(v.violations) - len(rows)} smaller violations not shown)")
    return s


def curves_section(ctx: Context) -> Section:
    s = Section("curves", "Training curves and the miniseries")

    items = budget_curves(ctx)
    if items:
        s.img(
            plot_budget_curves(items, ctx.figdir / "isoflop_curves.png"),
            "validation bpb of every isoFLOP run during training, coloured by budget",
        )
    curves = [c for c in (curve_of(ctx.study, r) for r in ctx.study.done("series")) if c]
    if not curves:
        s.p("miniseries " + ctx.study.hint("series"))
        return s
    s.img(
        plot_curves(curves, ctx.figdir / "series_curves.png", ylabel="validation bpb"),
        "miniseries training curves: they must be parallel and never cross",
    )
    s.img(
        plot_series(curves, ctx.figdir / "series.png"),
        "miniseries: final validation bpb (left) and CORE (right) vs training compute",
    )
    return s


def lr_section(ctx: Context) -> Section:

    s = Section("lr", "LR sweep and transfer")
    results: dict = {}
    for r in ctx.study.done("lr_sweep"):
        if r["lr_mult"] and r["depth"] is not None:
            results.setdefault(int(r["depth"]), []).append((float(r["lr_mult"]), r["val_bpb"]))
    if not results:
        s.p(ctx.study.hint("lr_sweep"))
        return s
    v = transfer_check(results)
    s.verdict(v.ok, v.summary())
    ctx.headline["lr"] = v.summary()
    s.p(
        "Per depth, the optimum is the vertex of a parabola in log2(LR) through the best "
        "multiplier and its neighbours. Penalty: the relative bpb a depth loses when trained at "
        f"the common multiplier instead of its own (tolerance {v.tol:.1%})."
    )
    s.table(*rt.lr_table(v))
    optima = {d: o["lr_mult"] for d, o in v.optima.items() if not o["flag"]}
    s.img(
        plot_lr_sweep(
            results, optima, ctx.figdir / "lr_sweep.png", ylabel="validation bits per byte"
        ),
        "validation bpb vs LR multiplier per depth; star and dotted line = fitted optimum",
    )
    return s


def core_section(ctx: Context) -> Section:

    s = Section("core", "CORE per task")
    runs = [r for r in ctx.study.done("series") if ctx.study.core_tasks.get(r["run_id"])]
    if not runs:
        s.p(ctx.study.hint("core" if ctx.study.done("series") else "series"))
        return s
    tasks = {r["run_id"]: {t["task"]: t for t in ctx.study.core_tasks[r["run_id"]]} for r in runs}
    present = [t for t in CORE_TASKS if any(t.label in tasks[r["run_id"]] for r in runs)]
    missing = [t.label for t in CORE_TASKS if t not in present]
    label = "CORE" if not missing else f"CORE-{len(present)}"
    if missing:
        s.verdict(
            None,
            f"**{label}**, not CORE: {len(present)} of {len(CORE_TASKS)} tasks; missing "
            f"{', '.join(missing)}. Its values are close to, not equal to, CORE.",
        )
    s.p("Each cell: accuracy / centered = (accuracy − baseline) / (1 − baseline).")
    names = [f"d{r['depth']}" if r["depth"] is not None else r["run_id"] for r in runs]
    cols, rows, means = rt.core_table(names, present, [tasks[r["run_id"]] for r in runs], label)
    s.table(cols, rows)
    ctx.headline["core"] = (
        f"{label} of the largest miniseries run ({names[-1]}): {means[-1]:.4f}"
        + (f" ({len(missing)} tasks missing)" if missing else "")
    )
    return s


def _series_points(ctx: Context):
    """flops, core (or None), bpb, core standard errors (or None) of the finished series."""

    runs = sorted(ctx.study.done("series"), key=lambda r: r["flops"] or 0)
    runs = [r for r in runs if r["flops"]]
    flops = [r["flops"] for r in runs]
    bpb = [r["val_bpb"] for r in runs]
    core = [r["core"] for r in runs] if runs and all(r["core"] is not None for r in runs) else None
    base = {t.label: t.random_baseline for t in CORE_TASKS}
    se = []
    for r in runs:
        rows = [t for t in ctx.study.core_tasks.get(r["run_id"], []) if t["n_examples"]]
        if not rows or any(t["task"] not in base for t in rows):
            se = None
            break
        se.append(
            core_standard_error(
                [t["accuracy"] for t in rows],
                [base[t["task"]] for t in rows],
                [t["n_examples"] for t in rows],
            )
        )
    return flops, core, bpb, (se if core is not None else None)


def calibration_section(ctx: Context) -> Section:

    s = Section("extrapolation", "Calibration and extrapolation")
    flops, core, bpb, se = _series_points(ctx)
    if len(flops) < 2:
        s.p("Extrapolation needs a miniseries of 2+ runs: " + ctx.study.hint("series"))
    else:
        laws = None
        fit = ctx.fits.get(ctx.convention)
        if fit is not None and fit.n_law is not None:
            smp = fit.samples
            draws = tuple(zip(10 ** smp["logk_n"], smp["exp_n"], 10 ** smp["logk_d"], smp["exp_d"]))
            draws = tuple(d for d in draws if all(map(math.isfinite, d)))
            n_law, d_law = fit.n_law, fit.d_law
            laws = ScalingLaws(
                n_law.k, n_law.exponent, d_law.k, d_law.exponent, fit.convention, draws
            )
        try:
            sf = fit_series(flops, core, bpb, se, n_boot=min(ctx.n_bootstrap, 500))
            table = extrapolation_table(
                sf.core_fit, sf.bpb_fit, laws, ctx.hardware, chance=sf.chance
            )
        except UserError as e:
            s.p(f"No extrapolation: {e}")
        else:
            if sf.chance is not None and sf.chance.at_chance:
                s.verdict(
                    None,
                    f"CORE is at chance across the series ({sf.chance.reason}): "
                    "no CORE curve, so the table extrapolates bpb only.",
                )
            labels = {r["core_label"] for r in ctx.study.done("series")} - {None, "CORE"}
            if table.mode == "core" and labels:
                s.p(
                    f"The series' CORE is {', '.join(sorted(labels))}, the targets are full "
                    "CORE (GPT-2 measured, GPT-3 estimated): treat the costs as approximate."
                )
            s.p(f"**{table.title}**")
            s.table(table.headers, table.display_rows())
            s.ul(table.notes)
            if table.sanity:
                ctx.headline["extrapolation"] = table.sanity["verdict"]
    gpt3_blocks(s)
    return s


def predictions_section(ctx: Context) -> Section:
    s = Section("predictions", "Predictions vs outcomes")
    runs = {r["run_id"]: r for r in ctx.study.runs if r["kind"] == "one_knob"}
    preds = [p for p in ctx.study.predictions if p["run_id"] in runs]
    if not preds:
        s.p("No one-knob runs with a prediction: " + ctx.study.hint("one_knob"))
        return s
    s.p(
        "What was predicted before each one-knob run (the first prediction stored for it), "
        "against what it measured; blind = stored before the run first started."
    )
    rows, first = [], {}
    for p in preds:
        first.setdefault(p["run_id"], p)
    for rid, p in first.items():
        ok, _ = blind_check(p, [runs[rid]])
        blind = {True: "blind", False: "NOT BLIND", None: "not started"}[ok]
        rows += rt.prediction_rows(runs[rid], Prediction.from_dict(p["predicted"]), blind)
    cols = ["run", "quantity", "predicted", "measured", "error %", "interval", "blind"]
    s.table(cols, rows)
    return s


def comparison_section(ctx: Context) -> Section:
    """Every isoFLOP study whose run settings differ from the baseline's (the study named
    "baseline", else the first one trained), compared with it as two lines."""
    s = Section("comparison", "Comparing studies")
    base, others = studies_to_compare(ctx.study.done("isoflop"), ctx.study.project, ctx.convention)
    if not others:
        s.p(
            "One set of settings, nothing to compare: `miniseries sweep --study NAME "
            "--optimizer adamw ...` makes a second line, `miniseries compare` compares any two."
        )
        return s
    for other in others:
        try:
            c = compare_inputs(base, other, ctx.study.project, ctx.convention, ctx.n_bootstrap)
        except UserError as e:
            s.p(f"**{base}** vs **{other}**: not compared ({e}).")
            continue
        s.p(f"**{other}** against **{base}**: " + "; ".join(c.settings or ()) + ".")
        s.ul(list(c.notes))
        for columns, rows in rt.comparison_tables(c):
            s.table(columns, rows)
        h = c.headline
        s.verdict(
            None,
            f"At C = {h.budget:.3g}, {other} needs {fmt_interval(h.m, label=True)} times the "
            f"compute of {base} to reach {base}'s optimal loss. {c.crossing.text}.",
        )
        path = plot_compare(c, ctx.figdir / f"compare_{base}_{other}.png".replace(" ", "_"))
        s.img(path, f"{base} vs {other}: L*(C) and N*(C) with 90% bands")
    return s


def gpt3_blocks(s: Section) -> None:
    """GPT-3's estimated CORE and the GPT-2 fits behind it (reference data: always shown)."""
    cal = calibrate_gpt3()
    s.p(
        "GPT-3 has no public weights: its CORE is estimated from the 6 tasks its paper reports, "
        "by fits on the four GPT-2 models (simple: OLS on the mean centered score; ridge: α = "
        f"{cal.alpha:g} on the 6 scores; final = their mean)."
    )
    fits, models = rt.gpt3_tables(cal)
    s.table(*fits)
    s.table(*models)


def notes_section(convention: str) -> Section:
    """The footer: conventions, definitions, and citations for miniseries/report/reference.py."""
    s = Section("notes", "Notes and definitions")
    s.ul(rt.notes_items(convention))
    return s
