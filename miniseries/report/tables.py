"""The report's tables: store rows and fitted objects -> (columns, rows of formatted text).

Every number goes through the formatters in miniseries.report.render, so the report and the commands
print it the same way.
"""

import math

import numpy as np

from miniseries.formatting import fmt, fmt_count, fmt_interval
from miniseries.laws.base import CONVENTION_NAMES, Prediction
from miniseries.report.render import core_text


def _opt(v, spec: str = ".3g") -> str:
    return "" if v is None else format(v, spec)


RUN_CELLS = (
    ("kind", lambda r, c: r["kind"]),
    ("study", lambda r, c: r["study"] or ""),
    ("budget", lambda r, c: _opt(r["budget"])),
    ("depth", lambda r, c: _opt(r["depth"], "d")),
    ("params ({c})", lambda r, c: fmt_count(r[f"params_{c}"]) if r[f"params_{c}"] else ""),
    ("tokens", lambda r, c: fmt_count(r["tokens"]) if r["tokens"] else ""),
    ("FLOPs", lambda r, c: _opt(r["flops"])),
    ("steps", lambda r, c: _opt(r["steps"], "d")),
    ("val bpb", lambda r, c: _opt(r["val_bpb"], ".4f")),
    ("CORE", lambda r, c: core_text(r["core"], r["core_label"])),
    ("wall s", lambda r, c: _opt(r["wall_s"], ".0f")),
    ("status", lambda r, c: r["status"] + (f": {r['error'][:60]}" if r["error"] else "")),
)


def runs_table(rows: list[dict], convention: str):
    cols = [name.format(c=convention) for name, _ in RUN_CELLS]
    return cols, [[cell(r, convention) for _, cell in RUN_CELLS] for r in rows]


def vertex_table(fit):
    rows = []
    for v in fit.vertices:
        ratio = fmt(v.d_opt / v.n_opt, ".3g") if math.isfinite(v.n_opt) else "—"
        n, d = fmt_count(v.n_opt), fmt_count(v.d_opt)
        flags = "; ".join(v.flags) or "ok"
        rows.append([f"{v.budget:.3g}", v.n_points, n, d, ratio, fmt(v.loss_opt), flags])
    return ["budget C", "runs", "N*", "D*", "D*/N*", "bpb at N*", "flags"], rows


def laws_table(fits: dict, chosen: str):
    """a, b and the ratio under each convention (fits: convention -> ScalingFit)."""
    rows = []
    for c, f in fits.items():
        name = c + (" (chosen)" if c == chosen else "")
        if f.n_law is None:
            rows.append([name, "—", "—", "—", "needs 2 usable budgets"])
            continue
        a, b = fmt_interval(f.n_law.interval), fmt_interval(f.d_law.interval)
        ratio = fmt_interval(f.ratio_interval, ".3g")
        rows.append([name, a, b, ratio, f"{f.n_law.n_points} budgets; C = {f.ratio_budget:.2g}"])
    return ["convention", "a", "b", "tokens:params D*/N*", "fitted on; ratio at"], rows


PARAMETRIC_CELLS = (
    ("E", "E", ".4f"),
    ("A", "A", ".3g"),
    ("B", "B", ".3g"),
    ("α", "alpha", ".3f"),
    ("β", "beta", ".3f"),
    ("a = β/(α+β)", "a", ".3f"),
    ("D*/N*", "ratio", ".3g"),
)


def parametric_table(par):
    """One row per parameter: a 7-column row of intervals would not fit the page."""
    rows = [[name, fmt_interval(par.intervals[k], s)] for name, k, s in PARAMETRIC_CELLS]
    return ["parameter", f"fit [{par.intervals['E'].label}]"], rows


def violations_table(violations: list, limit: int = 30):
    rows = []
    for x in sorted(violations, key=lambda x: -x.excess)[:limit]:
        where = f"N = {fmt_count(x.at)}" if x.kind == "isoflop" else f"{x.at:.3g} FLOPs"
        rows.append([x.kind, x.runs[0], x.runs[1], where, f"{x.excess:.4f}"])
    return ["check", "smaller", "bigger", "where", "bigger is worse by"], rows


def lr_table(verdict):
    rows = []
    for d, o in verdict.optima.items():
        best, fitted = f"×{o['best_grid']:.3g}", f"×{o['lr_mult']:.3g}"
        penalty = f"{verdict.penalties[d]:.2%}"
        rows.append([d, o["n_points"], best, fitted, fmt(o["loss"]), penalty, o["flag"] or "ok"])
    cols = ["depth", "LRs tried", "best tried", "fitted optimum", "bpb there", "penalty", "flag"]
    return cols, rows


def gpt3_tables(cal):
    """(the GPT-2 fits' quality, GPT-2 and GPT-3 CORE) from calibrate.calibrate_gpt3()."""
    simple = f"simple: CORE = {cal.simple.weights[0]:.4f}·mean6 + {cal.simple.intercept:.4f}"
    fits = [
        [simple, f"{cal.simple.r2:.4f}", f"{cal.simple.loo_rmse:.4f}"],
        ["ridge (6 features)", f"{cal.ridge.r2:.4f}", f"{cal.ridge.loo_rmse:.4f}"],
        ["final (mean of both)", "", f"{cal.final_loo_rmse:.4f}"],
    ]
    rows = []
    for g in cal.gpt2:
        fitted = [f"{g['mean6']:.4f}", f"{g['simple']:.4f}", f"{g['ridge']:.4f}"]
        rows.append([g["name"], "—", *fitted, f"{g['core']:.4f} (measured)", ""])
    for e in cal.estimates:
        fitted = [f"{e.mean_centered:.4f}", f"{e.simple:.4f}", f"{e.ridge:.4f}"]
        rows.append([e.name, fmt_count(e.params), *fitted, f"{e.final:.4f}", f"{e.nanochat:.3f}"])
    cols = ["model", "params", "mean centered (6)", "simple", "ridge", "CORE", "nanochat"]
    return (["fit", "R²", "LOO RMSE"], fits), (cols, rows)


def notes_items(convention: str) -> list[str]:
    names = "; ".join(f"`{k}` = {v}" for k, v in CONVENTION_NAMES.items())
    return [
        f"Parameter conventions: {names}. Every N in this report counts "
        f"**{CONVENTION_NAMES[convention]}** unless the table names another. The tokens:params "
        "ratio depends strongly on the convention (nanochat v1: ~8 counting all params, ~10.5 "
        "counting matrices + lm_head).",
        "bpb (bits per byte) = sum of target-token losses in nats / (ln 2 · UTF-8 bytes of those "
        "tokens), special tokens excluded; evaluated on one fixed packing of the validation set.",
        "CORE (DCLM): 22 in-context tasks, accuracy centered by the random baseline, "
        "(acc − rb)/(1 − rb), averaged. CORE-k averages only k tasks and is never called CORE.",
        "Intervals: percentile bootstrap 90% over runs (scaling laws) or series points "
        "(extrapolation).",
        "Sources: Hoffmann et al. 2022, Training Compute-Optimal Large Language Models "
        "(Chinchilla: isoFLOP and parametric fits); Besiroglu et al. 2024 (Epoch AI), Chinchilla "
        "Scaling: A replication attempt; Li et al. 2024, DataComp-LM (CORE); Karpathy, nanochat "
        "miniseries v1 (Jan 2026: CORE = 1 − 3.7555·C^−0.0344, GPT-2 CORE measured, GPT-3 CORE "
        "estimated); Brown et al. 2020, GPT-3 paper (Table H.1 accuracies; 3.14e23 training "
        "FLOPs).",
    ]


def held_out_row(p: Prediction, meas: dict | None) -> tuple[list, str | None]:
    """One held-out budget: the stored prediction ``p`` against the measured vertex ``meas``;
    returns the table row and the headline line (None until the budget is measured). The
    outcome is judged against the prediction interval when the prediction has one."""
    law = fmt_interval(p.loss, ".4f")
    judged = p.outcome or p.loss
    pi = fmt_interval(p.outcome, ".4f") if p.outcome else "—"
    fitted = ", ".join(f"{c:.2g}" for c in p.fit_budgets)
    if meas is None or not math.isfinite(meas["loss"]):
        row = [f"{p.budget:.3g}", fitted, pi, law, "not trained yet", "—"]
        return row + [fmt_count(p.n_opt.point), "—", "—"], None
    err = 100 * (judged.point - meas["loss"]) / meas["loss"]
    n_err = 100 * (p.n_opt.point - meas["n_opt"]) / meas["n_opt"]
    row = [f"{p.budget:.3g}", fitted, pi, law, fmt(meas["loss"]), f"{err:+.2f}"]
    row += [fmt_count(p.n_opt.point), fmt_count(meas["n_opt"]), f"{n_err:+.1f}"]
    where = "inside" if judged.contains(meas["loss"]) else "outside"
    line = (
        f"held-out C = {p.budget:.3g}: predicted bpb {fmt_interval(judged, '.4f')} vs measured "
        f"{meas['loss']:.4f} ({err:+.2f}%, {where} the {judged.label}; law {law} "
        f"{p.loss.label}; N* {n_err:+.0f}%)"
    )
    if meas.get("flags"):  # the measurement itself is in doubt: say so beside the verdict
        row[4] += " (flagged)"
        line += f"; the measured vertex is flagged ({'; '.join(meas['flags'])}): {FLAGGED}"
    return row, line


FLAGGED = "its bpb and N* are a parabola's extrapolation, so the verdict is weaker than it reads"


def held_out_columns(convention: str) -> list[str]:
    cols = ["budget", "fitted on", "predicted bpb [90% PI]", "law L* [90% CI]", "measured bpb"]
    return cols + ["error %", f"predicted N* ({convention})", "measured N*", "N* error %"]


def core_table(names: list[str], tasks: list, by_run: list[dict], label: str):
    """Per task (``tasks``: bundle.Task objects) and run: accuracy / centered, then the mean.
    ``by_run``: per run, task label -> core_tasks row. Returns columns, rows, per-run means."""
    rows = []
    for t in tasks:
        cells = [run.get(t.label) for run in by_run]
        shown = [f"{c['accuracy']:.3f} / {c['centered']:+.3f}" if c else "—" for c in cells]
        rows.append([t.label, f"{t.random_baseline:.3f}", *shown])
    means = [float(np.mean([c["centered"] for c in run.values()])) for run in by_run]
    rows.append([f"**{label}** (mean centered)", ""] + [f"**{m:.4f}**" for m in means])
    return ["task", "baseline", *names], rows, means


def prediction_rows(run: dict, pred: Prediction, blind: str) -> list[list]:
    """A one-knob run's predicted val bpb against the measured one: judged against the prediction
    interval of this run when the prediction has one (the law's CI otherwise, labelled so). N*
    and D* are predictions about the optimum, which one run does not measure; the plan's
    settings (depth, steps, FLOPs) are what the run used, so neither is compared here."""
    judged = pred.outcome or pred.loss
    if judged is None:
        return []
    depth = f"d{run['depth']}" if run["depth"] is not None else ""
    name = " ".join(x for x in (run["study"], depth) if x) or run["run_id"]
    done = run["status"] == "done" and run.get("val_bpb") is not None
    measured = run.get("val_bpb") if done else None
    err = 100 * (judged.point - measured) / measured if done else None
    shown = f"{measured:#.4g}" if done else f"({run['status']})"
    predicted = fmt_interval(judged, "#.4g", label=True)
    inside = ("inside" if judged.contains(measured) else "outside") if done else "—"
    return [[name, "val bpb", predicted, shown, fmt(err, "+.2f"), inside, blind]]


def comparison_tables(c) -> list[tuple[list[str], list[list[str]]]]:
    """A ``compare.Comparison`` as tables: the fitted laws side by side with their differences,
    D*/N* under each convention, and the effective compute multiplier across the range."""
    a, b = c.names
    at = f"at C = {c.budget:.3g}"
    laws = [
        ["a (N* ∝ C^a)", *(fmt_interval(x.a) for x in c.lines), "B − A " + fmt_interval(c.a_diff)],
        ["b (D* ∝ C^b)", *(fmt_interval(x.b) for x in c.lines), "B − A " + fmt_interval(c.b_diff)],
        [f"D*/N* {at}", *(fmt_interval(x.ratio, ".3g") for x in c.lines),
         "B/A " + fmt_interval(c.ratio_b_over_a)],
        [f"L* {at}", *(fmt_interval(x.loss, ".4f") for x in c.lines),
         "B − A " + fmt_interval(c.loss_diff, ".4f")],
    ]  # fmt: skip
    label = c.lines[0].a.label
    out = [([f"law [{label}]", f"A = {a}", f"B = {b}", "difference"], laws)]
    if len(c.ratios) > 1:
        rows = [
            [r.convention, fmt_interval(r.ratio_a, ".3g"), fmt_interval(r.ratio_b, ".3g"),
             fmt_interval(r.b_over_a)]
            for r in c.ratios
        ]  # fmt: skip
        out.append(([f"D*/N* {at}: params counted", f"A = {a}", f"B = {b}", "B/A"], rows))
    rows = [[f"{m.budget:.3g}", fmt_interval(m.m), m.where] for m in c.multipliers]
    out.append((["C", f"compute multiplier m [{label}]", "budget"], rows))
    return out
