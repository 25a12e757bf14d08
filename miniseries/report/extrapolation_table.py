"""The extrapolation table as data and as text: rows of plain numbers (for JSON and CSV) and the
same rows as cells — every number with its interval, both forms where they disagree, and how far
past the data the row is — for the terminal (rich), Markdown and the report. Built by
miniseries/report/extrapolate.py.
"""

import csv
import io
import json
import math
from dataclasses import dataclass, field

import numpy as np

from miniseries.formatting import fmt_count, fmt_hours, fmt_sci, fmt_usd


@dataclass
class Table:
    """Rows of plain numbers (for CSV/JSON) plus the lines a reader needs around them.

    ``forms``: the fitted forms whose numbers the rows carry, the chosen one first. ``fit``: what
    a program reading the JSON needs besides the rows (forward scores, limits, rows left out)."""

    title: str
    mode: str  # "core" or "bpb"
    columns: list[str]
    rows: list[dict]
    notes: list[str] = field(default_factory=list)
    sanity: dict | None = None
    forms: list[str] = field(default_factory=list)
    fit: dict = field(default_factory=dict)

    @property
    def headers(self) -> list[str]:
        return [_HEADERS.get(c, c) for c in self.columns]

    def to_rows(self) -> list[dict]:
        return [dict(r) for r in self.rows]

    def to_json(self) -> str:
        keys = ("title", "mode", "rows", "notes", "sanity", "forms", "fit")
        doc = {k: getattr(self, k) for k in keys}
        return json.dumps(_finite(doc), indent=2, default=_json_default)

    def to_csv(self) -> str:
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        return buf.getvalue()

    def display_rows(self) -> list[list[str]]:
        return [[_cell(r, c, self.forms) for c in self.columns] for r in self.rows]

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", ""]
        lines += ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(r) + " |" for r in self.display_rows()]
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def to_rich(self):
        from rich.markup import escape
        from rich.table import Table as RichTable

        caption = escape("\n".join(self.notes))
        t = RichTable(title=escape(self.title), caption=caption, caption_justify="left")
        for c, h in zip(self.columns, self.headers):
            t.add_column(h, justify="left" if c in ("target", "budget") else "right")
        for r in self.display_rows():
            t.add_row(*(escape(c) for c in r))
        return t


def _cell(row: dict, col: str, forms: list[str]) -> str:
    v = row.get(col)
    if col == "decades_past_data":
        return _distance_text(v, row.get("speculative", False))
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    fmt = _FORMATS.get(col, fmt_sci)
    lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
    text = fmt(v)
    both = row.get("forms_disagree") and all(f"{col}_{f}" in row for f in forms)
    if both and len(forms) > 1:
        text = " / ".join(f"{fmt(row[f'{col}_{f}'])} ({f})" for f in forms)
    if lo is not None and hi is not None and (lo != v or hi != v):
        text += f" [{fmt(lo)}–{fmt(hi)}]"
        if both:
            text += f" ({row['interval']})"
    return text


def _distance_text(decades, speculative: bool) -> str:
    """'+2.3 dec', 'inside data', '+3.4 dec, speculative', '∞' for a target out of reach."""
    if decades is None or decades != decades:
        return "—"
    if math.isinf(decades):
        return "∞, speculative"
    if decades <= 0:
        return "inside data"
    return f"+{decades:.1f} dec" + (", speculative" if speculative else "")


_HEADERS = {"decades_past_data": "past data"}

_FORMATS = {
    "params": fmt_count,
    "tokens": fmt_count,
    "core": lambda v: f"{v:.4f}",
    "bpb": lambda v: f"{v:.4f}",
    "depth": lambda v: f"{v}",
    "hours": fmt_hours,
    "usd": fmt_usd,
}


def _finite(o):
    """JSON has no infinity: an unreachable figure is written as the string "inf"."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None if math.isnan(o) else ("inf" if o > 0 else "-inf")
    return o


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serializable: {type(o)}")
