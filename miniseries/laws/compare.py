"""Two families ("lines") compared by their fitted scaling laws: which one is better, by how much,
and how sure the fits are of it.

Each line is fitted on its own (``fit_isoflop``, a seeded residual bootstrap on its design). A
difference B − A takes paired bootstrap draws: resample i of A's fit with resample i of B's.
When the lines share their design (the same budgets and sizes, as an ablation's arms do), both
use one seed, so resample i draws the same cells' residuals in both: a bootstrap paired by
(budget, size) cell. Otherwise the two bootstraps are independent, and pairing by index is a
valid draw from the joint distribution. The percentile interval of the paired differences is
the difference's confidence interval; a resample in which B never reaches A's loss counts as
m = +inf, not dropped.

The headline is the effective compute multiplier m(C) = C_B / C, where L*_B(C_B) = L*_A(C): the
compute B needs to reach the optimal loss A reaches with C, relative to C (m < 1: B is better).
With each line's loss law L* = k C^s (log-log linear, as ``fit_isoflop`` fits it),

    log m = (log k_A − log k_B + (s_A − s_B) log C) / s_B,

computed for the point fits and for each paired draw. The lines are compared where both were
sampled, the overlap of their usable budget ranges; a, b, D*/N* and L* are read at its geometric
middle, the common budget. numpy only, no torch (the store is plain SQLite).
"""

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass

import numpy as np

from miniseries.config import check_convention
from miniseries.errors import UserError
from miniseries.formatting import fmt, fmt_bounds, fmt_interval
from miniseries.laws.base import LEVEL, Interval, Run, clean_json, group_budgets, n_label
from miniseries.laws.isoflop import ScalingFit, fit_isoflop

# ---------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True)
class LineFit:
    """One line's fitted laws, read at the comparison's common budget."""

    name: str
    n_runs: int
    budgets: tuple[float, ...]  # its usable isoFLOP budgets
    a: Interval  # exponent of N* = k C^a
    b: Interval  # exponent of D* = k' C^b
    ratio: Interval  # D*/N* at the common budget
    loss: Interval  # L* at the common budget
    loss_law: tuple[float, float]  # (k, s) of L* = k C^s


@dataclass(frozen=True)
class Multiplier:
    """m(C): the compute B needs to reach A's optimal loss at C, over C."""

    budget: float
    where: str  # which budget this is: the range's start, middle or end, a line's budget
    m: Interval


@dataclass(frozen=True)
class ConventionRatio:
    """D*/N* of both lines at the common budget when params count ``convention``."""

    convention: str
    ratio_a: Interval
    ratio_b: Interval
    b_over_a: Interval


@dataclass(frozen=True)
class Crossing:
    """Whether L*_B − L*_A changes sign inside the compared range. ``beyond_intervals``: at both
    ends of the range the difference's CI excludes 0, so the sign there (and so the crossing, or
    its absence) is not bootstrap noise."""

    crosses: bool
    budget: float | None  # where the point laws cross
    beyond_intervals: bool
    text: str


@dataclass(frozen=True)
class Comparison:
    """Line B against line A: each line's laws, the differences B − A (ratios as B/A), the
    effective compute multiplier across the compared range, and whether the L* lines cross."""

    names: tuple[str, str]
    convention: str
    budget: float  # the common budget: the geometric middle of the compared range
    budget_range: tuple[float, float]  # the overlap of the usable budgets (else the gap)
    overlaps: bool
    lines: tuple[LineFit, LineFit]
    a_diff: Interval  # a_B − a_A
    b_diff: Interval  # b_B − b_A
    ratio_b_over_a: Interval  # (D*/N*)_B / (D*/N*)_A at the common budget
    loss_diff: Interval  # L*_B − L*_A at the common budget
    multipliers: tuple[Multiplier, ...]
    crossing: Crossing
    ratios: tuple[ConventionRatio, ...]  # D*/N* under each convention fitted
    n_bootstrap: int
    seed: int
    sources: tuple[str, str] = ("", "")  # where each line came from, in words
    settings: tuple[str, ...] | None = None  # what differs between the lines' runs (store input)
    notes: tuple[str, ...] = ()
    fits: tuple[ScalingFit, ...] = field(default=(), repr=False, compare=False)  # for plots

    @property
    def headline(self) -> Multiplier:
        """The multiplier at the common budget."""
        return min(self.multipliers, key=lambda m: abs(math.log(m.budget / self.budget)))

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "fits"}
        d = {k: asdict(v) if is_dataclass(v) else v for k, v in d.items()}
        for key in ("lines", "multipliers", "ratios"):
            d[key] = [asdict(v) for v in d[key]]
        d |= {
            "n_label": n_label(self.convention),
            "intervals": f"bootstrap {LEVEL:.0%} confidence intervals of the fitted laws",
            "headline": asdict(self.headline),
        }
        return clean_json(d)


# ---------------------------------------------------------------------------------------------
# Comparing two lines


def line_seeds(seed: int, paired: bool = False) -> tuple[int, int]:
    """Two bootstrap seeds from one: independent, or (``paired``) the same seed for both lines,
    so that on a shared design resample i draws the same cells' residuals in both
    (laws/isoflop.py's residual bootstrap indexes cells budget by budget, run by run)."""
    a, b = np.random.SeedSequence(seed).generate_state(2)
    return (int(a), int(a)) if paired else (int(a), int(b))


def shared_design(runs_a: list[Run], runs_b: list[Run]) -> bool:
    """Whether two lines were run on the same cells: the same (budget, size) in the same order
    within each budget, as two arms of one design are (the ablation's)."""

    def cells(runs):
        return [(c, [round(math.log10(r.params), 6) for r in rs]) for c, rs in group_budgets(runs)]

    return cells(runs_a) == cells(runs_b)


def _fit(runs: list[Run], convention: str, n_bootstrap: int, seed: int, name: str) -> ScalingFit:
    fit = fit_isoflop(runs, convention, n_bootstrap, seed)
    if fit.n_law is None:
        usable = sum(v.usable for v in fit.vertices)
        raise UserError(
            f"line {name}: the isoFLOP fit needs 2 usable budgets, has {usable} of "
            f"{len(fit.vertices)}; sweep more budgets (or widen the depths) for it"
        )
    return fit


def _log_law(fit: ScalingFit, key: str, lc: float) -> tuple[float, np.ndarray]:
    """log10 of a law (n, d or l) at log10 C: the point fit's value and each resample's."""
    law = {"n": fit.n_law, "d": fit.d_law, "l": fit.loss_law}[key]
    s = fit.samples
    return math.log10(law.k) + law.exponent * lc, s[f"logk_{key}"] + s[f"exp_{key}"] * lc


def _log_ratio(fit: ScalingFit, lc: float) -> tuple[float, np.ndarray]:
    (pd, sd), (pn, sn) = _log_law(fit, "d", lc), _log_law(fit, "n", lc)
    return pd - pn, sd - sn


def _ratio_pair(fa: ScalingFit, fb: ScalingFit, lc: float):
    """(ratio A, ratio B, B/A) at log10 C, each an Interval (B/A over paired resamples)."""
    (pa, sa), (pb, sb) = _log_ratio(fa, lc), _log_ratio(fb, lc)
    return (
        Interval.from_samples(10**pa, 10**sa),
        Interval.from_samples(10**pb, 10**sb),
        Interval.from_samples(10 ** (pb - pa), 10 ** (sb - sa)),
    )


def log_multiplier(logk_a, s_a, logk_b, s_b, lc):
    """log10 m at log10 C from two loss laws L* = k C^s (log10 k, s; scalars or paired arrays).
    Where B's loss does not fall with compute (s_B >= 0): +inf if B is above A's target at C (no
    compute reaches it: dropping such a resample would bias the interval towards "B is
    better"), -inf (m = 0) if already below; NaN only where a resample failed."""
    s_b = np.asarray(s_b, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (np.asarray(logk_a) - logk_b + (np.asarray(s_a) - s_b) * lc) / s_b
    above = np.asarray(logk_b) + s_b * lc > np.asarray(logk_a) + np.asarray(s_a) * lc
    flat = np.where(above, np.inf, -np.inf)  # not falling: never reaches it, or already below
    return np.where(s_b < 0, out, np.where(np.isnan(s_b), np.nan, flat))


def _multiplier(fa: ScalingFit, fb: ScalingFit, c: float, where: str) -> Multiplier:
    la, lb, sa, sb = fa.loss_law, fb.loss_law, fa.samples, fb.samples
    lc = math.log10(c)
    point = log_multiplier(math.log10(la.k), la.exponent, math.log10(lb.k), lb.exponent, lc)
    boot = log_multiplier(sa["logk_l"], sa["exp_l"], sb["logk_l"], sb["exp_l"], lc)
    with np.errstate(over="ignore"):
        m = Interval.from_samples(float(10**point), 10**boot, nan_is_unbounded=True)
    return Multiplier(c, where, m)


def _line_fit(fit: ScalingFit, name: str, n_runs: int, lc: float) -> LineFit:
    (pr, sr), (pl, sl) = _log_ratio(fit, lc), _log_law(fit, "l", lc)
    return LineFit(
        name, n_runs, tuple(_usable(fit)), fit.n_law.interval, fit.d_law.interval,
        Interval.from_samples(10**pr, 10**sr), Interval.from_samples(10**pl, 10**sl),
        (fit.loss_law.k, fit.loss_law.exponent),
    )  # fmt: skip


def _usable(fit: ScalingFit) -> list[float]:
    return [v.budget for v in fit.vertices if v.usable]


def _marked_budgets(lo, hi, overlaps, fits, names) -> list[tuple[float, str]]:
    """The budgets a multiplier is shown at: the range's ends and middle, and every usable budget
    of either line inside the range, each once with what it is."""
    span = "overlap" if overlaps else "gap (extrapolated)"
    marks: dict[float, tuple[float, list[str]]] = {}

    def add(c, what):
        marks.setdefault(round(math.log10(c), 6), (c, []))[1].append(what)

    add(lo, f"{span} start")
    add(math.sqrt(lo * hi), "middle (common budget)")
    add(hi, f"{span} end")
    inside = [{round(math.log10(c), 6) for c in _usable(f) if lo * 0.999 <= c <= hi * 1.001}
              for f in fits]  # fmt: skip
    for key in sorted(inside[0] | inside[1]):
        both = key in inside[0] and key in inside[1]
        add(10**key, "budget of both" if both else f"budget of {names[key in inside[1]]}")
    return [(c, ", ".join(what)) for _, (c, what) in sorted(marks.items())]


def _crossing(fa, fb, lo, hi, names) -> Crossing:
    """Sign of log L*_B − log L*_A at both ends of [lo, hi] (linear in log C in between)."""
    ends = []
    for c in (lo, hi):
        (pa, sa), (pb, sb) = _log_law(fa, "l", math.log10(c)), _log_law(fb, "l", math.log10(c))
        ends.append(Interval.from_samples(pb - pa, sb - sa))
    signs = [np.sign(e.point) for e in ends]
    sure = all(e.bounded and not e.contains(0.0) for e in ends)
    unsure = (
        f"at an end of the range the difference's {ends[0].label} contains 0"
        if all(e.bounded for e in ends)
        else "no intervals (too few resamples)"
    )
    range_text = f"[{lo:.3g}, {hi:.3g}]"
    crosses = bool(signs[0] * signs[1] < 0)
    if not crosses:
        lower = names[1] if signs[0] < 0 or (signs[0] == 0 and signs[1] < 0) else names[0]
        how = f"beyond the {ends[0].label}s at both ends" if sure else f"but {unsure}"
        return Crossing(
            False, None, sure, f"L* lines do not cross in {range_text}: {lower} lower, {how}"
        )
    la, lb = fa.loss_law, fb.loss_law
    at = 10 ** (-(math.log10(lb.k) - math.log10(la.k)) / (lb.exponent - la.exponent))
    first, second = (names[1], names[0]) if signs[0] < 0 else (names[0], names[1])
    text = f"L* lines cross at C ≈ {at:.3g} in {range_text}: {first} lower below, {second} above"
    text += (
        f"; beyond the {ends[0].label}s (the sign at both ends is resolved)"
        if sure
        else f"; not resolved: {unsure}"
    )
    return Crossing(True, float(at), sure, text)


def compare_lines(
    runs_a: list[Run],
    runs_b: list[Run],
    convention: str = "total",
    n_bootstrap: int = 1000,
    seed: int = 0,
    names: tuple[str, str] = ("A", "B"),
    other_conventions: dict[str, tuple[list[Run], list[Run]]] | None = None,
) -> Comparison:
    """Fit both lines (isoFLOP, bootstrap seeds from ``seed``) and compare B against A.

    ``other_conventions``: the same runs with params counted otherwise ({convention: (runs_a,
    runs_b)}); their D*/N* ratios are added to ``ratios`` (a line whose fit fails there is noted
    and skipped)."""
    check_convention(convention)
    if n_bootstrap < 0:
        raise UserError(f"the bootstrap needs >= 0 resamples (0: no intervals), got {n_bootstrap}")
    paired = shared_design(runs_a, runs_b)
    seeds = line_seeds(seed, paired)
    notes = (
        ["bootstrap paired by (budget, size) cell: the lines share their design"] if paired else []
    )
    fa = _fit(runs_a, convention, n_bootstrap, seeds[0], names[0])
    fb = _fit(runs_b, convention, n_bootstrap, seeds[1], names[1])
    ba, bb = _usable(fa), _usable(fb)
    lo, hi = max(min(ba), min(bb)), min(max(ba), max(bb))
    overlaps = lo <= hi * (1 + 1e-9)
    lo, hi = (lo, hi) if overlaps else (hi, lo)
    if not overlaps:
        notes.append(
            f"the lines' budget ranges do not overlap: they are compared across the gap "
            f"[{lo:.3g}, {hi:.3g}], where at least one law is extrapolated"
        )
    budget = math.sqrt(lo * hi)
    lc = math.log10(budget)
    lines = (_line_fit(fa, names[0], len(runs_a), lc), _line_fit(fb, names[1], len(runs_b), lc))
    sa, sb = fa.samples, fb.samples

    def diff(key, law):
        point = getattr(fb, law).exponent - getattr(fa, law).exponent
        return Interval.from_samples(point, sb[f"exp_{key}"] - sa[f"exp_{key}"])

    (pla, sla), (plb, slb) = _log_law(fa, "l", lc), _log_law(fb, "l", lc)
    ratios = [ConventionRatio(convention, *_ratio_pair(fa, fb, lc))]
    for conv, (ra, rb) in (other_conventions or {}).items():
        if conv == convention:
            continue
        try:
            ga = _fit(ra, conv, n_bootstrap, seeds[0], names[0])
            gb = _fit(rb, conv, n_bootstrap, seeds[1], names[1])
        except UserError as e:
            notes.append(f"D*/N* counting {n_label(conv)} not compared: {e}")
            continue
        ratios.append(ConventionRatio(conv, *_ratio_pair(ga, gb, lc)))
    marks = _marked_budgets(lo, hi, overlaps, (fa, fb), names)
    multipliers = tuple(_multiplier(fa, fb, c, where) for c, where in marks)
    rising = int(np.sum(fb.samples["exp_l"] >= 0))  # NaN (dropped resamples) counts False
    if rising or fb.loss_law.exponent >= 0:
        notes.append(
            f"{names[1]}'s loss law does not fall with compute (s >= 0) in {rising} of "
            f"{n_bootstrap} resamples{' and in the point fit' if fb.loss_law.exponent >= 0 else ''}"
            ": no compute reaches a target there, so their multiplier counts as unbounded"
        )
    return Comparison(
        names=tuple(names),
        convention=convention,
        budget=budget,
        budget_range=(lo, hi),
        overlaps=overlaps,
        lines=lines,
        a_diff=diff("n", "n_law"),
        b_diff=diff("d", "d_law"),
        ratio_b_over_a=ratios[0].b_over_a,
        loss_diff=Interval.from_samples(10**plb - 10**pla, 10**slb - 10**sla),
        multipliers=multipliers,
        crossing=_crossing(fa, fb, lo, hi, names),
        ratios=tuple(ratios),
        n_bootstrap=n_bootstrap,
        seed=seed,
        notes=tuple(notes),
        fits=(fa, fb),
    )


# ---------------------------------------------------------------------------------------------
# Text


def _table(header: list[str], rows: list[list[str]], left=(0,)) -> list[str]:
    """Plain-text columns: numbers right-aligned, the ``left`` columns (labels) left-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]


def _iv(iv: Interval, spec: str = ".3f") -> str:
    return fmt_interval(iv, spec)


def _diff(iv: Interval, spec: str = ".3f") -> str:
    """A difference: the point signed, its bounds plain ('+0.012 [-0.004–0.028]')."""
    bounds = fmt_bounds(iv.lo, iv.hi, spec)
    return fmt(iv.point, "+" + spec) + ("" if bounds == "—" else f" {bounds}")


def _verdict(m: Interval, names) -> str:
    if not m.bounded:
        return "no interval (too few resamples)"
    if m.contains(1.0):
        return f"the {m.label} contains 1: no difference resolved"
    better = names[1] if m.hi < 1 else names[0]
    return f"{better} is better, beyond the {m.label}"


def format_comparison(c: Comparison) -> str:
    """The comparison as a text table; every interval is labelled a CI of the fitted laws."""
    A, B = c.names
    label = c.lines[0].a.label
    out = []
    for letter, line, source in zip("AB", c.lines, c.sources):
        bs = line.budgets
        where = f"{source}: " if source else ""
        out.append(
            f"{letter} = {line.name} ({where}{line.n_runs} runs; {len(bs)} usable budgets "
            f"{min(bs):.3g} to {max(bs):.3g})"
        )
    out += [
        f"Parameter counts: {n_label(c.convention)}. Every interval below is a {label}: a "
        f"bootstrap {LEVEL:.0%} confidence interval of the fitted laws (where the law's value "
        "lies, not where one new run lands). B − A and B/A pair resample i of A's fit with "
        f"resample i of B's ({c.n_bootstrap} each, seeds from {c.seed}).",
    ]
    if c.settings is not None:
        out.append(f"Settings that differ ({A} -> {B}): " + ("; ".join(c.settings) or "none"))
    out += [f"note: {n}" for n in c.notes]
    at = f"at C={c.budget:.3g}"
    rows = [
        ["a (N* ∝ C^a)", _iv(c.lines[0].a), _iv(c.lines[1].a), "B − A " + _diff(c.a_diff)],
        ["b (D* ∝ C^b)", _iv(c.lines[0].b), _iv(c.lines[1].b), "B − A " + _diff(c.b_diff)],
        [f"D*/N* {at}", *(_iv(x.ratio, ".3g") for x in c.lines), "B/A " + _iv(c.ratio_b_over_a)],
        [f"L* {at}", *(_iv(x.loss, ".4f") for x in c.lines), "B − A " + _diff(c.loss_diff, ".4f")],
    ]
    out += ["", f"Fitted laws ({n_label(c.convention)}); cells: point [{label}]"]
    out += _table(["", f"A = {A}", f"B = {B}", "difference"], rows)
    if len(c.ratios) > 1:
        out += ["", f"D*/N* {at} by what params count; cells: point [{label}]"]
        out += _table(
            ["params counted", f"A = {A}", f"B = {B}", "B/A"],
            [
                [n_label(r.convention), _iv(r.ratio_a, ".3g"), _iv(r.ratio_b, ".3g"),
                 _iv(r.b_over_a)]
                for r in c.ratios
            ],
        )  # fmt: skip
    out += [
        "",
        f"Effective compute multiplier m(C) = C_B / C with L*_B(C_B) = L*_A(C): the compute {B} "
        f"needs to reach {A}'s optimal loss at C, over C (m < 1: {B} is better; from the loss "
        f"laws L* = k C^s)",
    ]
    out += _table(
        ["C", f"m [{label}]", "budget"],
        [[f"{m.budget:.3g}", _iv(m.m), m.where] for m in c.multipliers],
        left=(2,),
    )
    h = c.headline
    out += [
        "",
        f"At C={h.budget:.3g}: {B} needs {fmt_interval(h.m, label=True)} times the compute "
        f"of {A} to reach {A}'s optimal loss: {_verdict(h.m, c.names)}.",
        c.crossing.text + ".",
    ]
    return "\n".join(out)
