"""What it would cost to reach GPT-2 and GPT-3: FLOPs, model size, tokens, hours and dollars.

For each target CORE (GPT-2's measured, GPT-3's estimated) the fitted CORE(C) law is inverted to
FLOPs; the compute-optimal params and tokens at those FLOPs come from the scaling laws
(N_opt = kN·C^a, D_opt = kD·C^b, given as plain numbers so this module does not depend on how they
were fitted); hours = FLOPs / (GPUs × peak × MFU) and dollars = hours × GPUs × price. Every
figure carries the bootstrap interval of the CORE fit (and of the laws, when samples are given).

When the series' CORE is indistinguishable from chance there is no CORE curve to invert: the table
says so and becomes a bpb-only extrapolation (predicted bpb at compute budgets, FLOPs to reach bpb
targets) from the bpb-vs-FLOPs law.
"""

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from miniseries import reference as ref
from miniseries.calibrate import BpbFit, ChanceVerdict, CoreFit
from miniseries.errors import UserError
from miniseries.laws.base import LEVEL, Interval
from miniseries.render import fmt_count, fmt_hours, fmt_sci, fmt_usd

SANITY_FACTOR = 10.0  # predicted GPT-3 175B FLOPs within this factor of the real ones is "OK"
DEFAULT_BUDGETS = tuple(10.0**e for e in range(16, 25))


@dataclass(frozen=True)
class Hardware:
    """A training cluster. Default: 8×H100, bf16 dense peak 989 TFLOP/s, MFU 0.5, $3/GPU-hour."""

    gpus: int = 8
    peak_flops: float = 989e12  # per GPU
    mfu: float = 0.5
    gpu_hour_usd: float = 3.0

    def __post_init__(self):
        checks = (
            (self.gpus >= 1, f"gpus must be >= 1, got {self.gpus}"),
            (self.peak_flops > 0, f"peak FLOP/s must be positive, got {self.peak_flops:g}"),
            (0 < self.mfu <= 1, f"MFU must be in (0, 1] (typical 0.3-0.5), got {self.mfu:g}"),
            (self.gpu_hour_usd >= 0, f"GPU-hour price must be >= 0, got {self.gpu_hour_usd:g}"),
        )
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def hours(self, flops: float) -> float:
        return flops / (self.gpus * self.peak_flops * self.mfu) / 3600

    def dollars(self, flops: float) -> float:
        return self.hours(flops) * self.gpus * self.gpu_hour_usd

    def describe(self) -> str:
        return (
            f"{self.gpus} GPUs × {self.peak_flops:.3g} FLOP/s × MFU {self.mfu:.2f}, "
            f"${self.gpu_hour_usd:g}/GPU-hour"
        )


@dataclass(frozen=True)
class ScalingLaws:
    """N_opt = kN·C^a and D_opt = kD·C^b, with optional bootstrap samples (kN, a, kD, b).

    ``convention`` names which params N counts (total | kaplan | matrices): always shown."""

    kN: float
    a: float
    kD: float
    b: float
    convention: str = "total"
    samples: tuple[tuple[float, float, float, float], ...] = ()

    @classmethod
    def constant_ratio(cls, ratio: float, convention: str = "total") -> "ScalingLaws":
        """C = 6·N·D with D = ratio·N, so N = sqrt(C / (6·ratio)) and D = ratio·N."""
        if ratio <= 0:
            raise UserError(f"tokens:params ratio must be positive, got {ratio:g}")
        kn = (6 * ratio) ** -0.5
        return cls(kn, 0.5, ratio * kn, 0.5, convention)

    def n_opt(self, flops: float) -> float:
        return self.kN * flops**self.a

    def d_opt(self, flops: float) -> float:
        return self.kD * flops**self.b

    def describe(self) -> str:
        return (
            f"N_opt = {self.kN:.3g}·C^{self.a:.3f}, D_opt = {self.kD:.3g}·C^{self.b:.3f} "
            f"(params counted: {self.convention})"
        )


@dataclass
class Table:
    """Rows of plain numbers (for CSV/JSON) plus the lines a reader needs around them."""

    title: str
    mode: str  # "core" or "bpb"
    columns: list[str]
    rows: list[dict]
    notes: list[str] = field(default_factory=list)
    sanity: dict | None = None

    def to_rows(self) -> list[dict]:
        return [dict(r) for r in self.rows]

    def to_json(self) -> str:
        doc = {
            "title": self.title,
            "mode": self.mode,
            "rows": self.rows,
            "notes": self.notes,
            "sanity": self.sanity,
        }
        return json.dumps(_finite(doc), indent=2, default=_json_default)

    def to_csv(self) -> str:
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        return buf.getvalue()

    def display_rows(self) -> list[list[str]]:
        return [[_cell(r, c) for c in self.columns] for r in self.rows]

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", ""]
        lines += ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(r) + " |" for r in self.display_rows()]
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def to_rich(self):
        from rich.markup import escape
        from rich.table import Table as RichTable

        caption = escape("\n".join(self.notes))
        t = RichTable(title=escape(self.title), caption=caption, caption_justify="left")
        for c in self.columns:
            t.add_column(c, justify="left" if c in ("target", "budget") else "right")
        for r in self.display_rows():
            t.add_row(*(escape(c) for c in r))
        return t


def default_targets() -> dict[str, float]:
    """GPT-2's measured CORE and GPT-3's estimated CORE (miniseries.calibrate)."""
    from miniseries.calibrate import calibrate_gpt3

    out = dict(ref.gpt2_core_targets())
    out.update({e.name: e.final for e in calibrate_gpt3().estimates})
    return out


def extrapolation_table(
    core_fit: CoreFit | None,
    bpb_fit: BpbFit | None,
    laws: ScalingLaws | None = None,
    hardware: Hardware | None = None,
    *,
    chance: ChanceVerdict | None = None,
    depth_for_params: Callable[[float], int] | None = None,
    targets: dict[str, float] | None = None,
    budgets: tuple[float, ...] = DEFAULT_BUDGETS,
    bpb_targets: tuple[float, ...] = (),
    level: float = LEVEL,
) -> Table:
    """The cost table: per CORE target when a CORE fit exists, otherwise bpb-only."""
    hw = hardware or Hardware()
    if core_fit is None:
        if bpb_fit is None:
            raise UserError("nothing to extrapolate: no CORE fit and no bpb fit (series needs bpb)")
        return _bpb_table(bpb_fit, laws, hw, chance, depth_for_params, budgets, bpb_targets, level)
    targets = default_targets() if targets is None else targets
    rows = []
    for name, core in targets.items():
        flops = core_fit.flops_for_core(core, level)
        row = {"target": name, "core": core}
        row.update(
            _cost_cells(flops, core_fit.flops_samples(core), laws, hw, depth_for_params, level)
        )
        for alt in core_fit.models:
            if alt != core_fit.chosen:
                row.update(
                    _with_interval(f"flops_{alt}", core_fit.flops_for_core(core, level, alt))
                )
        rows.append(row)
    columns = ["target", "core", "flops"] + [
        f"flops_{a}" for a in core_fit.models if a != core_fit.chosen
    ]
    columns += _cost_columns(laws, depth_for_params)
    notes = [f"CORE fit: {core_fit.describe()}", f"hardware: {hw.describe()}"]
    notes += _common_notes(core_fit.samples.get(core_fit.chosen), laws, level)
    if bpb_fit is not None:
        notes.append(f"bpb fit: {bpb_fit.describe()}")
    lo, hi = core_fit.flops_range
    if math.isfinite(lo):
        notes.append(f"series spans {lo:.2g}–{hi:.2g} FLOPs; targets beyond it are extrapolated")
    sanity = _sanity(core_fit, targets, level)
    if sanity:
        notes.append(sanity["verdict"])
    title = f"Cost to reach each target's CORE ({core_fit.chosen} form)"
    return Table(title, "core", columns, rows, notes, sanity)


def _cost_columns(laws, depth_for_params) -> list[str]:
    cols = ["params", "tokens"] if laws else []
    cols += ["depth"] if (laws and depth_for_params) else []
    return cols + ["hours", "usd"]


def _cost_cells(flops: Interval, flops_samples, laws, hw, depth_for_params, level) -> dict:
    """Params, tokens, depth, hours, dollars at ``flops``, each with its interval."""
    cells = _with_interval("flops", flops)
    if laws is not None:
        cells.update(_with_interval("params", _law_interval(laws, flops, flops_samples, 0, level)))
        cells.update(_with_interval("tokens", _law_interval(laws, flops, flops_samples, 1, level)))
        if depth_for_params is not None:
            cells["depth"] = _safe_depth(depth_for_params, cells["params"])
            cells["depth_lo"] = _safe_depth(depth_for_params, cells["params_lo"])
            cells["depth_hi"] = _safe_depth(depth_for_params, cells["params_hi"])
    # hours and dollars are proportional to FLOPs: their interval is the FLOPs interval, scaled
    for key, f in (("hours", hw.hours), ("usd", hw.dollars)):
        cells.update(_with_interval(key, Interval(f(flops.point), f(flops.lo), f(flops.hi))))
    return cells


def _law_interval(laws: ScalingLaws, flops: Interval, flops_samples, which: int, level) -> Interval:
    """N_opt (which=0) or D_opt (1) at the FLOPs point; samples pair each CORE-fit draw with a
    laws draw (cycling), so both sources of uncertainty reach the interval."""

    def value(law: tuple, c: float) -> float:
        k, e = (law[0], law[1]) if which == 0 else (law[2], law[3])
        return k * c**e if math.isfinite(c) else math.inf

    point_law = (laws.kN, laws.a, laws.kD, laws.b)
    point = value(point_law, flops.point)
    draws = list(flops_samples) if flops_samples is not None and len(flops_samples) else []
    law_draws = list(laws.samples) or [point_law]
    if not draws:  # no CORE samples: the laws' own spread at the point FLOPs
        draws = [flops.point] * len(law_draws) if laws.samples else []
    s = np.array([value(law_draws[i % len(law_draws)], c) for i, c in enumerate(draws)])
    return Interval.from_samples(point, s, level, nan_is_unbounded=True)


def _bpb_table(bpb_fit, laws, hw, chance, depth_for_params, budgets, bpb_targets, level) -> Table:
    reason = chance.reason if chance is not None and chance.at_chance else "no CORE in the series"
    headline = (
        "CORE indistinguishable from chance across the series"
        if chance is not None and chance.at_chance
        else "No CORE fit"
    )
    rows = []
    for c in budgets:
        bpb = bpb_fit.bpb_at(c, level)
        row = {"budget": f"{c:.0e} FLOPs", "bpb": bpb.point, "bpb_lo": bpb.lo, "bpb_hi": bpb.hi}
        row.update(_cost_cells(Interval(c, c, c), None, laws, hw, depth_for_params, level))
        rows.append(row)
    for t in bpb_targets:
        flops = bpb_fit.flops_for_bpb(t, level)
        row = {"budget": f"to reach bpb {t:g}", "bpb": t}
        samples = np.array([m.flops_for_bpb(t) for m in bpb_fit.samples])
        row.update(_cost_cells(flops, samples, laws, hw, depth_for_params, level))
        rows.append(row)
    columns = ["budget", "bpb", "flops"] + _cost_columns(laws, depth_for_params)
    notes = [
        f"{headline}: {reason}. No CORE curve is fitted and no GPT-2/GPT-3 CORE target is "
        "costed; this is a bpb-only extrapolation (validation bits per byte).",
        f"bpb fit: {bpb_fit.describe()}",
        f"hardware: {hw.describe()}",
    ]
    notes += _common_notes(bpb_fit.samples, laws, level)
    title = f"bpb-only extrapolation — {headline}"
    return Table(title, "bpb", columns, rows, notes)


def _common_notes(samples, laws, level) -> list[str]:
    notes = []
    if samples:
        notes.append(f"[lo–hi]: {level:.0%} bootstrap interval over the series' points")
    else:
        notes.append("no bootstrap samples (law given as numbers): no intervals")
    if laws is not None:
        notes.append(f"scaling laws: {laws.describe()}")
    else:
        notes.append("no scaling laws given: params/tokens not shown")
    return notes


def _sanity(core_fit: CoreFit, targets: dict[str, float], level) -> dict | None:
    """GPT-3 175B: predicted FLOPs for its estimated CORE against its real training compute."""
    core = targets.get("GPT-3 175B")
    if core is None:
        return None
    pred = core_fit.flops_for_core(core, level)
    real = ref.GPT3_175B_TRAIN_FLOPS
    ratio = pred.point / real
    if not math.isfinite(ratio):
        verdict = (
            f"sanity: GPT-3 175B's CORE {core:.3f} is out of the fit's reach (real: {real:.3g})"
        )
        ok = False
    else:
        ok = 1 / SANITY_FACTOR <= ratio <= SANITY_FACTOR
        off = f"×{ratio:.2g}" if ratio >= 1 else f"÷{1 / ratio:.2g}"
        verdict = (
            f"sanity: GPT-3 175B (CORE {core:.3f}) predicted {pred.point:.2g} FLOPs vs real "
            f"{real:.3g} ({off}): "
            + ("OK, within an order of magnitude" if ok else f"off by {off}")
        )
    return {
        "target": "GPT-3 175B",
        "core": core,
        "predicted_flops": pred.point,
        "predicted_lo": pred.lo,
        "predicted_hi": pred.hi,
        "real_flops": real,
        "ratio": ratio,
        "ok": ok,
        "verdict": verdict,
    }


def _with_interval(key: str, iv: Interval) -> dict:
    return {key: iv.point, f"{key}_lo": iv.lo, f"{key}_hi": iv.hi}


def _safe_depth(depth_for_params, params: float):
    return depth_for_params(params) if math.isfinite(params) else None


def _cell(row: dict, col: str) -> str:
    v = row.get(col)
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    fmt = _FORMATS.get(col, fmt_sci)
    lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
    text = fmt(v)
    if lo is not None and hi is not None and (lo != v or hi != v):
        text += f" [{fmt(lo)}–{fmt(hi)}]"
    return text


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
    raise TypeError(f"not JSON serializable: {type(o)}")
