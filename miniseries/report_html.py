"""Render a report, built as a list of sections of simple blocks, to Markdown and to one HTML file.

Why one document model and two renderers: the Markdown (for a terminal, a diff, a GitHub page)
and the HTML (for a browser) must say exactly the same thing. The HTML is self-contained: inline
CSS, every PNG embedded as a base64 data URI, no scripts, no external assets, so it can be mailed
or archived as one file.

Also here: the number formatting every table uses, and the one figure miniseries.plots lacks
(isoFLOP training curves coloured by budget).

Blocks (tuples): ("p", text), ("ul", [text, ...]), ("table", columns, rows),
("img", path, caption), ("verdict", ok, text). Text may use `code` and **bold**.
"""

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, columns: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", list(columns), [[_str(c) for c in r] for r in rows]))

    def img(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", Path(path), caption))

    def verdict(self, ok: bool | None, text: str) -> None:
        self.blocks.append(("verdict", ok, text))


def _str(cell) -> str:
    return "" if cell is None else str(cell)


# ---------------------------------------------------------------------------------------------
# Markdown


def to_markdown(title: str, intro: list[str], sections: list[Section], base: Path) -> str:
    """Image paths are written relative to ``base`` (the folder report.md is in)."""
    lines = [f"# {title}", ""] + [line + "\n" for line in intro]
    lines += ["## Contents", ""] + [f"- [{s.title}](#{s.id})" for s in sections] + [""]
    for s in sections:
        lines += [f'<a id="{s.id}"></a>', f"## {s.title}", ""]
        for block in s.blocks:
            lines += _md_block(block, base) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _md_block(block, base: Path) -> list[str]:
    kind = block[0]
    if kind == "p":
        return [block[1]]
    if kind == "ul":
        return [f"- {item}" for item in block[1]]
    if kind == "verdict":
        mark = {True: "PASS", False: "FAIL", None: "NOTE"}[block[1]]
        return [f"> **{mark}**: {block[2]}"]
    if kind == "img":
        rel = Path(block[1]).resolve().relative_to(base.resolve()).as_posix()
        return [f"![{block[2]}]({rel})", "", f"*{block[2]}*"]
    if kind == "table":
        columns, rows = block[1], block[2]
        right = _numeric_columns(columns, rows)
        sep = ["---:" if r else "---" for r in right]
        out = [
            "| " + " | ".join(_md_cell(c) for c in columns) + " |",
            "| " + " | ".join(sep) + " |",
        ]
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        return out
    raise ValueError(f"unknown block {kind!r}")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


NUMERIC = re.compile(r"^[-+−~×÷$]?[\d.]|^[∞—-]$|^\[")


def _numeric_columns(columns: list[str], rows: list[list[str]]) -> list[bool]:
    """A column is right-aligned when most of its non-empty cells start like a number."""
    out = []
    for j in range(len(columns)):
        cells = [r[j] for r in rows if j < len(r) and r[j]]
        hits = sum(bool(NUMERIC.match(c)) for c in cells)
        out.append(bool(cells) and hits >= 0.6 * len(cells))
    return out


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
:root { --fg: #1d2430; --muted: #5b6676; --line: #dde2ea; --bg: #ffffff; --soft: #f5f7fa;
        --ok: #1a7f37; --okbg: #e9f6ec; --bad: #b42318; --badbg: #fdecea; --accent: #2f5fb3; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
             sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 28px 24px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-top: 8px; border-top: 1px solid var(--line); }
p { margin: 8px 0; }
.meta { color: var(--muted); font-size: 13px; margin-bottom: 14px; }
code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: var(--soft); padding: 1px 4px; border-radius: 3px; }
nav.toc { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
          padding: 10px 16px; margin: 16px 0 8px; font-size: 14px; }
nav.toc ol { margin: 4px 0; padding-left: 20px; columns: 2; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
.scroll { overflow-x: auto; margin: 10px 0; }
table { border-collapse: collapse; font-size: 13.5px; font-variant-numeric: tabular-nums;
        width: auto; min-width: 50%; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; border-bottom: 2px solid var(--line);
     vertical-align: bottom; }
td.num, th.num { text-align: right; }
td.num { white-space: nowrap; }
.iv { color: var(--muted); font-size: 12px; }
td .iv { display: block; line-height: 1.25; }  /* interval under its estimate: narrow columns */
tbody tr:hover { background: #fafbfd; }
figure { margin: 14px 0; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.verdict { border-left: 4px solid var(--muted); background: var(--soft); padding: 8px 12px;
           margin: 10px 0; border-radius: 0 4px 4px 0; }
.verdict.ok { border-color: var(--ok); background: var(--okbg); }
.verdict.bad { border-color: var(--bad); background: var(--badbg); }
.verdict b { margin-right: 6px; }
ul { padding-left: 22px; margin: 8px 0; }
li { margin: 3px 0; }
#headline ul { font-size: 15.5px; }
footer { color: var(--muted); font-size: 13px; }
"""


def _inline(text: str) -> str:
    """Escape, then `code` and **bold**."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cell(text: str) -> str:
    """A table cell: intervals '[lo–hi]' set smaller and muted, so the estimates stand out."""
    return re.sub(r"(\[[^\]]*\])", r'<span class="iv">\1</span>', _inline(text))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _html_block(block) -> str:
    kind = block[0]
    if kind == "p":
        return f"<p>{_inline(block[1])}</p>"
    if kind == "ul":
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>"
    if kind == "verdict":
        ok, text = block[1], block[2]
        cls, mark = {True: ("ok", "PASS"), False: ("bad", "FAIL"), None: ("", "NOTE")}[ok]
        return f'<div class="verdict {cls}"><b>{mark}</b>{_inline(text)}</div>'
    if kind == "img":
        cap = _inline(block[2])
        alt = html.escape(block[2])
        return (
            f'<figure><img src="{_data_uri(block[1])}" alt="{alt}">'
            f"<figcaption>{cap}</figcaption></figure>"
        )
    if kind == "table":
        columns, rows = block[1], block[2]
        right = _numeric_columns(columns, rows)

        def cells(values, tag):
            return "".join(
                f"<{tag}{' class=num' if r else ''}>{_cell(v)}</{tag}>"
                for v, r in zip(values, right)
            )

        body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
        return (
            f'<div class="scroll"><table><thead><tr>{cells(columns, "th")}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )
    raise ValueError(f"unknown block {kind!r}")


def to_html(title: str, intro: list[str], sections: list[Section]) -> str:
    toc = "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        "".join(f'<div class="meta">{_inline(line)}</div>' for line in intro),
        f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>',
    ]
    for s in sections:
        tag = "footer" if s.id == "notes" else "section"
        parts.append(f'<{tag} id="{s.id}"><h2>{html.escape(s.title)}</h2>')
        parts += [_html_block(b) for b in s.blocks]
        parts.append(f"</{tag}>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# Formatting, and the report's own figure


def fmt_count(v) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def fmt(v, spec: str = ".4f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return format(v, spec)


def fmt_iv(v, lo, hi, spec: str = ".3f") -> str:
    """'0.512 [0.48–0.55]' (the interval dropped when it is not finite)."""
    text = fmt(v, spec)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return text
    return f"{text} [{format(lo, spec)}–{format(hi, spec)}]"


def core_text(core, label) -> str:
    if core is None:
        return ""
    return f"{core:.4f}" if label in (None, "CORE") else f"{core:.4f} ({label})"


def plot_budget_curves(items: list, path: Path) -> Path:
    """Every isoFLOP run's val bpb vs FLOPs, coloured by its budget (one colour bar, no legend:
    dozens of runs would bury the plot under a legend)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    from miniseries.plots import _save, sparse_log_ticks

    fig = Figure(figsize=(7.0, 4.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    budgets = [b for b, _ in items]
    lo, hi = min(budgets), max(budgets)
    norm = LogNorm(lo, hi * (1.0001 if hi == lo else 1))
    cmap = colormaps["viridis"]
    for b, c in items:
        ax.plot(c.flops, c.loss, color=cmap(norm(b)), lw=1.1, alpha=0.85)
        ax.scatter([c.flops[-1]], [c.loss[-1]], color=cmap(norm(b)), s=10, zorder=3)
    ax.set_xscale("log")
    sparse_log_ticks(ax.xaxis)
    ax.set_xlabel("training compute so far (FLOPs)")
    ax.set_ylabel("validation bpb")
    n_b = len(set(budgets))
    ax.set_title(f"training curves of {len(items)} isoFLOP runs over {n_b} budgets")
    ax.grid(True, which="both", alpha=0.25)
    ys = np.concatenate([np.asarray(c.loss) for _, c in items])
    top = np.percentile(ys, 98) if len(ys) > 10 else ys.max()
    ax.set_ylim(ys.min() - 0.02 * (top - ys.min()), top + 0.05 * (top - ys.min()) + 1e-9)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="budget C (FLOPs)")
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Tables: fitted objects -> (columns, rows of text)


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
        a = fmt_iv(f.n_law.exponent, *f.n_law.interval)
        b = fmt_iv(f.d_law.exponent, *f.d_law.interval)
        ratio = fmt_iv(f.ratio, *f.ratio_interval, spec=".3g")
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
    rows = [
        [name, fmt_iv(getattr(par, k), *par.intervals[k], spec=s)]
        for name, k, s in PARAMETRIC_CELLS
    ]
    return ["parameter", "fit [90% interval]"], rows


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


def gpt3_blocks(s: Section) -> None:
    """GPT-3's estimated CORE and the GPT-2 fits behind it (reference data: always shown)."""
    from miniseries.calibrate import calibrate_gpt3

    cal = calibrate_gpt3()
    s.p(
        "GPT-3 has no public weights: its CORE is estimated from the 6 tasks its paper reports, "
        "by fits on the four GPT-2 models (simple: OLS on the mean centered score; ridge: α = "
        f"{cal.alpha:g} on the 6 scores; final = their mean)."
    )
    fits, models = gpt3_tables(cal)
    s.table(*fits)
    s.table(*models)


def notes_section(convention: str) -> Section:
    """The footer: conventions, definitions, and citations for miniseries/reference.py."""
    s = Section("notes", "Notes and definitions")
    s.ul(notes_items(convention))
    return s


def notes_items(convention: str) -> list[str]:
    from miniseries.laws import CONVENTION_NAMES

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


def held_out_row(p: dict, meas: dict | None) -> tuple[list, str | None]:
    """One held-out budget: the stored prediction ``p`` against the measured vertex ``meas``;
    returns the table row and the headline line (None until the budget is measured)."""
    loss = fmt_iv(p["loss"], p.get("loss_lo"), p.get("loss_hi"), ".4f")
    fitted = ", ".join(f"{c:.2g}" for c in p.get("fit_budgets", []))
    if meas is None or not math.isfinite(meas["loss"]):
        row = [f"{p['budget']:.3g}", fitted, loss, "not trained yet", "—"]
        return row + [fmt_count(p["n_opt"]), "—", "—"], None
    err = 100 * (p["loss"] - meas["loss"]) / meas["loss"]
    n_err = 100 * (p["n_opt"] - meas["n_opt"]) / meas["n_opt"]
    row = [f"{p['budget']:.3g}", fitted, loss, fmt(meas["loss"]), f"{err:+.2f}"]
    row += [fmt_count(p["n_opt"]), fmt_count(meas["n_opt"]), f"{n_err:+.1f}"]
    lo, hi = p.get("loss_lo"), p.get("loss_hi")
    where = (
        "inside" if lo is not None and hi is not None and lo <= meas["loss"] <= hi else "outside"
    )
    line = (
        f"held-out C = {p['budget']:.3g}: predicted bpb {loss} vs measured {meas['loss']:.4f} "
        f"({err:+.2f}%, {where} the 90% interval; N* {n_err:+.0f}%)"
    )
    return row, line


def held_out_columns(convention: str) -> list[str]:
    cols = ["budget", "fitted on", "predicted bpb", "measured bpb", "error %"]
    return cols + [f"predicted N* ({convention})", "measured N*", "N* error %"]


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


PREDICTION_ALIASES = {"loss": "val_bpb", "bpb": "val_bpb"}


def prediction_interval(pred: dict, key: str) -> tuple[float | None, float | None]:
    """The stated interval of a predicted quantity: ``{key}_interval`` = [lo, hi] (what the laws
    write) or ``{key}_lo`` / ``{key}_hi``; (None, None) when it has none."""
    if key.endswith("_opt") and f"{key[0]}_interval" in pred:  # n_opt -> n_interval
        key = key[0]
    both = pred.get(f"{key}_interval")
    if isinstance(both, (list, tuple)) and len(both) == 2:
        return both[0], both[1]
    return pred.get(f"{key}_lo"), pred.get(f"{key}_hi")


def prediction_rows(run: dict, pred: dict) -> list[list]:
    """Each predicted quantity of a one-knob run (a number stated with an interval) against the
    run's measured column. Settings the prediction carries (depth, steps, FLOPs) are not
    predictions: the run used them, so they are not compared with themselves."""
    depth = f"d{run['depth']}" if run["depth"] is not None else ""
    name = " ".join(x for x in (run["study"], depth) if x) or run["run_id"]
    done = run["status"] == "done"
    rows = []
    for key, value in pred.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lo, hi = prediction_interval(pred, key)
        if lo is None or hi is None:
            continue
        measured = run.get(PREDICTION_ALIASES.get(key, key))
        if done and not isinstance(measured, (int, float)):
            continue  # nothing measured to compare with
        err = 100 * (value - measured) / measured if done and measured else None
        shown = f"{measured:#.4g}" if done else f"({run['status']})"
        rows.append([name, key, fmt_iv(value, lo, hi, "#.4g"), shown, fmt(err, "+.2f")])
    return rows
