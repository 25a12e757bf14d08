"""What it would cost to reach GPT-2 and GPT-3: FLOPs, model size, tokens, hours and dollars.

For each target CORE (GPT-2's measured, GPT-3's estimated) the fitted CORE(C) law is inverted to
FLOPs; the compute-optimal params and tokens at those FLOPs come from the scaling laws
(N_opt = kN·C^a, D_opt = kD·C^b, given as plain numbers so this module does not depend on how they
were fitted); hours = FLOPs / (GPUs × peak × MFU) and dollars = hours × GPUs × price. Every
figure carries the bootstrap confidence interval of the fitted law (and of the laws, when samples
are given).

Extrapolation knows its limits. Every row says how many decades past the largest run it is, and
rows beyond MAX_DECADES are marked speculative. Every fitted form is inverted, not just the chosen
one: where the forms disagree by more than FORM_DISAGREEMENT the row shows both and its interval
spans both. The GPT-3 175B row is checked against GPT-3's real training compute, and a miss by
more than SANITY_FACTOR is the table's headline.

When the series' CORE is indistinguishable from chance there is no CORE curve to invert: the table
says so and becomes a bpb-only extrapolation (predicted bpb at compute budgets, FLOPs to reach bpb
targets) from the bpb-vs-FLOPs law, and it stops where the evidence stops (MAX_DECADES past the
data) unless asked to go further (``far``).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from miniseries.errors import UserError
from miniseries.laws.base import LEVEL, Interval
from miniseries.laws.flops_laws import BpbFit, CoreFit
from miniseries.report import reference as ref
from miniseries.report.calibrate import ChanceVerdict
from miniseries.report.extrapolation_table import Table

SANITY_FACTOR = 10.0
"""GPT-3 175B's predicted FLOPs must be within this factor of its real 3.14e23. The SPEC's test is
"within an order of magnitude": GPT-3's CORE is itself an estimate (±0.01-0.02 from four GPT-2
points), and at nanochat's slope k ≈ 0.034 a CORE error of 0.01 alone moves the FLOPs by ~1.7×;
a miss by more than 10× is not that noise but a wrong curve."""

MAX_DECADES = 2.0
"""Rows more than this many decades (factors of 10) past the largest run are speculative. A
miniseries spans about one decade of compute; a law fitted there pins its slope only to some
percent, and the error of the log-prediction grows in proportion to the distance from the data's
centre: two decades out it is already ~5× the error at the data's edge, and beyond that what
decides the answer is the form (curvature no run has measured), not the runs. A power law
fitted over one decade is not evidence three decades out."""

FORM_DISAGREEMENT = 2.0
"""Fitted forms that place a row's FLOPs more than this factor apart disagree: the row shows both
and its interval spans both. A factor of 2 is a doubling of the bill, the scale at which a cost
estimate changes a decision, and well above what the interval of one form already expresses
near the data (a few tens of percent)."""

FAR_TOP = 1e24
"""With ``far`` and no budgets given, the bpb-only table's budgets run up to GPT-3 scale."""

SPANS_BOTH = "spans both forms"


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
    def constant_ratio(
        cls, ratio: float, convention: str = "total", flops_per_param_token: float = 6.0
    ) -> "ScalingLaws":
        """C = c·N·D with D = ratio·N, so N = sqrt(C / (c·ratio)) and D = ratio·N. c is the
        training FLOPs per token over N: 6 under the 6ND rule (exact under the effective count);
        the family's own (accounting.py) where N counts params another way."""
        if ratio <= 0:
            raise UserError(f"tokens:params ratio must be positive, got {ratio:g}")
        if not flops_per_param_token > 0:
            raise UserError(f"FLOPs per param-token must be positive, got {flops_per_param_token}")
        kn = (flops_per_param_token * ratio) ** -0.5
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


def default_targets() -> dict[str, float]:
    """GPT-2's measured CORE and GPT-3's estimated CORE (miniseries.report.calibrate)."""
    from miniseries.report.calibrate import calibrate_gpt3

    out = dict(ref.gpt2_core_targets())
    out.update({e.name: e.final for e in calibrate_gpt3().estimates})
    return out


def decades_past_data(flops: float, data_max: float) -> float:
    """log10(flops / the largest run's FLOPs): 0 or less is inside the data, +2 is 100× past it,
    inf is out of reach, NaN when the data's range is unknown (a law given as numbers)."""
    if not math.isfinite(data_max) or not flops > 0:
        return float("nan")
    return math.log10(flops / data_max) if math.isfinite(flops) else float("inf")


def is_speculative(decades: float) -> bool:
    """Further past the data than MAX_DECADES (an unreachable row, at inf, is too)."""
    return decades == decades and decades > MAX_DECADES


def default_budgets(data_min: float, data_max: float, far: bool = False) -> tuple[float, ...]:
    """The bpb-only table's budgets: each power of ten from the smallest run up to where the
    evidence stops (data_max × 10^MAX_DECADES, itself the last budget); with ``far``, powers of
    ten on up to FAR_TOP, which the table marks speculative."""
    if not (math.isfinite(data_min) and math.isfinite(data_max)):
        raise UserError("the bpb fit has no data range (a law given as numbers): give budgets")
    stop = data_max * 10**MAX_DECADES
    top = max(stop, FAR_TOP) if far else stop
    first = math.ceil(math.log10(data_min) - 1e-9)
    powers = [10.0**e for e in range(first, math.floor(math.log10(top) + 1e-9) + 1)]
    inside = [c for c in powers if c < stop * (1 - 1e-9)]
    return tuple(inside + [stop] + [c for c in powers if c > stop * (1 + 1e-9)])


def extrapolation_table(
    core_fit: CoreFit | None,
    bpb_fit: BpbFit | None,
    laws: ScalingLaws | None = None,
    hardware: Hardware | None = None,
    *,
    chance: ChanceVerdict | None = None,
    depth_for_params: Callable[[float], int] | None = None,
    targets: dict[str, float] | None = None,
    budgets: tuple[float, ...] | None = None,
    bpb_targets: tuple[float, ...] = (),
    far: bool = False,
    level: float = LEVEL,
) -> Table:
    """The cost table: per CORE target when a CORE fit exists, otherwise bpb-only.

    ``budgets`` (bpb-only): None for default_budgets. ``far``: keep bpb-only rows more than
    MAX_DECADES past the data (marked speculative) instead of leaving them out."""
    hw = hardware or Hardware()
    ctx = _Ctx(laws, hw, depth_for_params, level)
    if core_fit is None:
        if bpb_fit is None:
            raise UserError("nothing to extrapolate: no CORE fit and no bpb fit (series needs bpb)")
        return _bpb_table(bpb_fit, ctx, chance, budgets, bpb_targets, far)
    return _core_table(core_fit, bpb_fit, ctx, default_targets() if targets is None else targets)


@dataclass(frozen=True)
class _Ctx:
    laws: ScalingLaws | None
    hw: Hardware
    depth_for_params: Callable[[float], int] | None
    level: float


# ---------------------------------------------------------------------------------------------
# CORE targets


def _core_table(core_fit: CoreFit, bpb_fit: BpbFit | None, ctx: _Ctx, targets: dict) -> Table:
    forms = [core_fit.chosen] + [f for f in core_fit.models if f != core_fit.chosen]
    data_lo, data_hi = core_fit.flops_range
    rows = [
        _inverse_row(
            {"target": name, "core": core},
            {f: core_fit.flops_for_core(core, ctx.level, f) for f in forms},
            lambda f, core=core: core_fit.flops_samples(core, f),
            data_hi,
            ctx,
        )
        for name, core in targets.items()
    ]
    columns = ["target", "core", "flops", "decades_past_data"] + _cost_columns(ctx)
    notes = [f"CORE fit: {core_fit.describe()}"]
    notes += _choice_notes(core_fit.forward_rmse, "CORE", core_fit.chosen)
    notes.append(f"hardware: {ctx.hw.describe()}")
    notes += _interval_notes(core_fit.samples.get(core_fit.chosen), ctx)
    notes += _limit_notes(rows, forms, (data_lo, data_hi), "FLOPs")
    if bpb_fit is not None:
        notes.append(f"bpb fit: {bpb_fit.describe()}")
    sanity = _sanity(core_fit, targets, ctx.level)
    title = f"Cost to reach each target's CORE ({core_fit.chosen} form)"
    if sanity:
        notes.append(sanity["verdict"])
        if not sanity["ok"]:
            title = f"SANITY FAIL ({sanity['headline']}) — {title}"
    fit = _fit_info(core_fit.chosen, core_fit.forward_rmse, core_fit.flops_range, rows, 0)
    return Table(title, "core", columns, rows, notes, sanity, forms, fit)


def _inverse_row(head: dict, per_form: dict, samples_of, data_hi: float, ctx: _Ctx) -> dict:
    """'FLOPs to reach X' under every form (``per_form``: form -> Interval, the chosen first):
    the chosen form's costs, their intervals widened to span every form's where the forms
    disagree, each form's own FLOPs, and the row's distance and flags."""
    cells = {f: _cost_cells(iv, samples_of(f), ctx) for f, iv in per_form.items()}
    spread = _spread([iv.point for iv in per_form.values()])
    row = dict(head)
    row.update(_span(cells, spread, ctx))
    for f, iv in per_form.items():
        row.update(_with_interval(f"flops_{f}", iv))
    chosen = next(iter(per_form.values()))
    row.update(_row_flags(spread, decades_past_data(chosen.point, data_hi), ctx.level))
    return row


def _spread(points: list[float]) -> float:
    """How far apart the forms put a row: max/min (1 when they agree exactly or there is one
    form; inf when one form reaches the target and another never does)."""
    pts = [p for p in points if p == p]
    if len(pts) < 2 or all(math.isinf(p) for p in pts):
        return 1.0
    lo, hi = min(pts), max(pts)
    return hi / lo if lo > 0 and math.isfinite(hi) else float("inf")


def _row_flags(spread: float, decades: float, level: float) -> dict:
    disagree = spread > FORM_DISAGREEMENT
    label = Interval(math.nan, math.nan, math.nan, level).label
    return {
        "form_spread": spread,
        "forms_disagree": disagree,
        "interval": f"{label}, {SPANS_BOTH}" if disagree else label,
        "decades_past_data": decades,
        "speculative": is_speculative(decades),
    }


def _span(cells: dict[str, dict], spread: float, ctx: _Ctx) -> dict:
    """The chosen form's cells (the first in ``cells``); where the forms disagree, with every
    interval widened to hold every form's interval and point: the honest range spans them."""
    first = next(iter(cells.values()))
    out = dict(first)
    if spread <= FORM_DISAGREEMENT:
        return out
    for key in [k for k in first if f"{k}_lo" in first and k != "depth"]:
        los = [v for c in cells.values() for v in (c[key], c[f"{key}_lo"]) if v == v]
        his = [v for c in cells.values() for v in (c[key], c[f"{key}_hi"]) if v == v]
        out[f"{key}_lo"], out[f"{key}_hi"] = min(los, default=math.nan), max(his, default=math.nan)
    if "depth" in out:
        for suffix in ("_lo", "_hi"):
            out[f"depth{suffix}"] = _safe_depth(ctx.depth_for_params, out[f"params{suffix}"])
    return out


def _cost_columns(ctx: _Ctx) -> list[str]:
    cols = ["params", "tokens"] if ctx.laws else []
    cols += ["depth"] if (ctx.laws and ctx.depth_for_params) else []
    return cols + ["hours", "usd"]


def _cost_cells(flops: Interval, flops_samples, ctx: _Ctx) -> dict:
    """Params, tokens, depth, hours, dollars at ``flops``, each with its interval."""
    laws, hw = ctx.laws, ctx.hw
    cells = _with_interval("flops", flops)
    if laws is not None:
        for i, key in enumerate(("params", "tokens")):
            cells.update(_with_interval(key, _law_interval(laws, flops, flops_samples, i, ctx)))
        if ctx.depth_for_params is not None:
            for suffix in ("", "_lo", "_hi"):
                cells[f"depth{suffix}"] = _safe_depth(
                    ctx.depth_for_params, cells[f"params{suffix}"]
                )
    # hours and dollars are proportional to FLOPs: their interval is the FLOPs interval, scaled
    for key, f in (("hours", hw.hours), ("usd", hw.dollars)):
        cells.update(_with_interval(key, Interval(f(flops.point), f(flops.lo), f(flops.hi))))
    return cells


def _law_interval(laws: ScalingLaws, flops: Interval, flops_samples, which: int, ctx) -> Interval:
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
    return Interval.from_samples(point, s, ctx.level, nan_is_unbounded=True)


# ---------------------------------------------------------------------------------------------
# bpb only


def _bpb_table(bpb_fit: BpbFit, ctx: _Ctx, chance, budgets, bpb_targets, far: bool) -> Table:
    at_chance = chance is not None and chance.at_chance
    reason = chance.reason if at_chance else "no CORE in the series"
    headline = (
        "CORE indistinguishable from chance across the series" if at_chance else "No CORE fit"
    )
    forms = [bpb_fit.form] + [f for f in bpb_fit.models if f != bpb_fit.form]
    data_lo, data_hi = bpb_fit.flops_range
    if budgets is None:
        budgets = default_budgets(data_lo, data_hi, far)
    rows = [_budget_row(bpb_fit, c, forms, ctx) for c in budgets]
    rows += [
        _inverse_row(
            {"budget": f"to reach bpb {t:g}", "bpb": t},
            {f: bpb_fit.flops_for_bpb(t, ctx.level, f) for f in forms},
            lambda f, t=t: bpb_fit.flops_samples(t, f),
            data_hi,
            ctx,
        )
        for t in bpb_targets
    ]
    left_out = [] if far else [r for r in rows if r["speculative"]]
    rows = [r for r in rows if far or not r["speculative"]]
    columns = ["budget", "bpb", "flops", "decades_past_data"] + _cost_columns(ctx)
    notes = [
        f"{headline}: {reason}. No CORE curve is fitted and no GPT-2/GPT-3 CORE target is "
        "costed; this is a bpb-only extrapolation (validation bits per byte).",
        f"bpb fit: {bpb_fit.describe()}",
    ]
    notes += _choice_notes(bpb_fit.forward_rmse, "bpb", bpb_fit.form)
    notes.append(f"hardware: {ctx.hw.describe()}")
    notes += _interval_notes(bpb_fit.samples, ctx)
    notes += _limit_notes(rows, forms, (data_lo, data_hi), "bpb at the budget (or FLOPs)")
    if left_out:
        notes.append(
            f"{len(left_out)} row(s) left out, more than {MAX_DECADES:g} decades past the largest "
            f"run ({data_hi:.2g} FLOPs), where the fit is no evidence: "
            f"{', '.join(r['budget'] for r in left_out)}. --far shows them, marked speculative."
        )
    title = f"bpb-only extrapolation — {headline}"
    fit = _fit_info(bpb_fit.form, bpb_fit.forward_rmse, bpb_fit.flops_range, rows, len(left_out))
    return Table(title, "bpb", columns, rows, notes, None, forms, fit)


def _budget_row(bpb_fit: BpbFit, c: float, forms: list[str], ctx: _Ctx) -> dict:
    """bpb at budget ``c`` under every form. The forms disagree when the FLOPs at which the
    others reach the chosen form's bpb differ from ``c`` by more than FORM_DISAGREEMENT: the same
    yardstick, a factor in compute, as the CORE table's."""
    per_form = {f: bpb_fit.bpb_at(c, ctx.level, f) for f in forms}
    chosen_bpb = per_form[forms[0]].point
    spread = _spread([c] + [bpb_fit.models[f].flops_for_bpb(chosen_bpb) for f in forms[1:]])
    row = {"budget": f"{c:.0e} FLOPs"}
    row.update(_span({f: _with_interval("bpb", iv) for f, iv in per_form.items()}, spread, ctx))
    for f, iv in per_form.items():
        row.update(_with_interval(f"bpb_{f}", iv))
    row.update(_cost_cells(Interval(c, c, c), None, ctx))
    row.update(_row_flags(spread, decades_past_data(c, bpb_fit.flops_range[1]), ctx.level))
    return row


# ---------------------------------------------------------------------------------------------
# Notes and the sanity check


def _choice_notes(scores: dict[str, float], unit: str, chosen: str) -> list[str]:
    if all(s != s for s in scores.values()):  # a law given as numbers, or a very short series
        return [] if len(scores) < 2 else [f"too few runs for forward validation: {chosen}"]
    return [
        "form chosen by forward validation: each form is fitted on the smallest runs and scored "
        f"(RMS error in {unit}) on the larger runs it did not see, at every split that leaves "
        "2 runs per parameter to fit; lowest error wins"
    ]


def _interval_notes(samples, ctx: _Ctx) -> list[str]:
    label = Interval(math.nan, math.nan, math.nan, ctx.level).label
    if samples:
        notes = [
            f"[lo–hi]: {label} of the fitted law (bootstrap over the series' points), not where "
            "one run would land; one form's interval cannot hold the error of a wrong form, so "
            "where the forms disagree the interval spans them all"
        ]
    else:
        notes = ["no bootstrap samples (law given as numbers): no intervals"]
    laws = ctx.laws
    notes.append(
        f"scaling laws: {laws.describe()}" if laws else "no scaling laws: no params/tokens"
    )
    return notes


def _limit_notes(rows: list[dict], forms: list[str], data_range, what: str) -> list[str]:
    lo, hi = data_range
    notes = []
    if math.isfinite(hi):
        n_spec = sum(r["speculative"] for r in rows)
        notes.append(
            f"series spans {lo:.2g}–{hi:.2g} FLOPs ({math.log10(hi / lo):.1f} decades); past data "
            f"= log10(row FLOPs / {hi:.2g}); rows more than {MAX_DECADES:g} decades past it are "
            f"speculative: {n_spec} of {len(rows)}"
        )
    else:
        notes.append("law given as numbers: its data's range is unknown, no row is marked by it")
    if len(forms) > 1:
        n_dis = sum(r["forms_disagree"] for r in rows)
        shown = f": those show every form's {what} and an interval that {SPANS_BOTH}"
        notes.append(
            f"the forms ({', '.join(forms)}) disagree by more than ×{FORM_DISAGREEMENT:g} on "
            f"{n_dis} of {len(rows)} rows" + (shown if n_dis else "")
        )
    return notes


def _fit_info(chosen: str, scores: dict, data_range, rows: list[dict], left_out: int) -> dict:
    return {
        "chosen": chosen,
        "forward_rmse": dict(scores),
        "data_flops": list(data_range),
        "max_decades": MAX_DECADES,
        "form_disagreement": FORM_DISAGREEMENT,
        "speculative_rows": sum(r["speculative"] for r in rows),
        "rows_left_out": left_out,
    }


def _factor(ratio: float) -> str:
    """×3.1 above, ÷61 below; ∞ when out of reach."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "∞"
    return f"×{ratio:.2g}" if ratio >= 1 else f"÷{1 / ratio:.2g}"


def _sanity(core_fit: CoreFit, targets: dict[str, float], level: float) -> dict | None:
    """GPT-3 175B: the chosen form's FLOPs for its estimated CORE against its real training
    compute; a miss by more than SANITY_FACTOR is a FAIL, worded to lead the table's title."""
    core = targets.get("GPT-3 175B")
    if core is None:
        return None
    real, chosen = ref.GPT3_175B_TRAIN_FLOPS, core_fit.chosen
    pred = core_fit.flops_for_core(core, level)
    per_form = {f: m.flops_for_core(core) for f, m in core_fit.models.items()}
    ratio, allowed = pred.point / real, f"×{SANITY_FACTOR:g}"
    ok = math.isfinite(ratio) and 1 / SANITY_FACTOR <= ratio <= SANITY_FACTOR
    others = ", ".join(f"{f} form {_factor(p / real)}" for f, p in per_form.items() if f != chosen)
    others = f" (other forms: {others})" if others else ""
    said = f"GPT-3 175B (CORE {core:.3f}) predicted {pred.point:.2g} FLOPs ({chosen} form)"
    if not math.isfinite(ratio):
        headline = f"GPT-3 175B out of reach; allowed {allowed}"
        verdict = f"SANITY FAIL: {said}: its CORE is out of reach (real: {real:.3g}){others}"
    elif ok:
        headline = f"GPT-3 175B {_factor(ratio)}; allowed {allowed}"
        verdict = f"sanity: {said} vs real {real:.3g} ({_factor(ratio)}): OK, within {allowed}"
        verdict += others
    else:
        headline = f"GPT-3 175B off by {_factor(ratio)}; allowed {allowed}"
        verdict = f"SANITY FAIL: {said} vs real {real:.3g}: off by {_factor(ratio)}, more than "
        verdict += f"the {allowed} allowed{others}"
    return {
        "target": "GPT-3 175B",
        "core": core,
        "predicted_flops": pred.point,
        "predicted_lo": pred.lo,
        "predicted_hi": pred.hi,
        "predicted_by_form": per_form,
        "real_flops": real,
        "ratio": ratio,
        "factor_allowed": SANITY_FACTOR,
        "ok": ok,
        "headline": headline,
        "verdict": verdict,
    }


# ---------------------------------------------------------------------------------------------
# Cells


def _with_interval(key: str, iv: Interval) -> dict:
    return {key: iv.point, f"{key}_lo": iv.lo, f"{key}_hi": iv.hi}


def _safe_depth(depth_for_params, params: float):
    return depth_for_params(params) if math.isfinite(params) else None
