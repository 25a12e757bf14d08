"""The number formatters every table, report and command prints with: one way to print a count,
a number, an interval, hours and dollars (the laws' own text, the report and the CLI share them).
"""

import math


def fmt(v, spec: str = ".4f") -> str:
    """A number, or '—' when there is none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return format(v, spec)


def fmt_count(v) -> str:
    """1234567 -> '1.23M'; '—' for none, '∞' for unbounded."""
    if v is None or math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def fmt_sci(v) -> str:
    """FLOPs and other wide-ranging numbers: '3.1e+19'."""
    return fmt(v, ".2g")


def fmt_hours(h: float) -> str:
    if not math.isfinite(h):
        return "∞"
    if h < 1 / 60:
        return f"{h * 3600:.2g} s"
    return f"{h * 60:.3g} min" if h < 1 else f"{h:.3g} h" if h < 48 else f"{h / 24:,.0f} d"


def fmt_usd(d: float) -> str:
    return "∞" if not math.isfinite(d) else f"${d:,.3g}" if d < 1000 else f"${d:,.0f}"


def fmt_bounds(lo, hi, spec=".3f") -> str:
    """'[0.48–0.55]', or '—' when either bound is missing or NaN. ``spec``: a format spec or a
    formatter function."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "—"
    f = spec if callable(spec) else (lambda v: fmt(v, spec))
    return f"[{f(lo)}–{f(hi)}]"


def fmt_iv(v, lo, hi, spec=".3f") -> str:
    """'0.512 [0.48–0.55]' (the bounds dropped when there are none)."""
    text = spec(v) if callable(spec) else fmt(v, spec)
    bounds = fmt_bounds(lo, hi, spec)
    return text if bounds == "—" else f"{text} {bounds}"


def fmt_interval(iv, spec=".3f", label: bool = False) -> str:
    """An ``Interval``: '0.512 [0.48–0.55]', with label=True '0.512 [0.48–0.55] (90% CI)'."""
    if iv is None:
        return "—"
    text = fmt_iv(iv.point, iv.lo, iv.hi, spec)
    return f"{text} ({iv.label})" if label and iv.bounded else text
