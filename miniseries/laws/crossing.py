"""The crossing detector: more compute must mean lower loss, everywhere it can be compared.

Three checks, each reporting every violation with the runs involved:

(a) isoFLOP profiles are nested: for budgets C1 < C2, every run of C2 whose size lies inside the
    sizes C1 sampled must not be worse than C1's profile at that size, beyond the noise.
(b) a miniseries, ordered by compute, improves monotonically: final loss never rises and final
    CORE (higher is better) never falls from a smaller run to a bigger one.
(c) the miniseries' training curves never cross: for runs i < j, at every point of training
    (the same fraction of each run's FLOPs, so both are at the same phase of the LR schedule)
    after a burn-in (the first 20%: early loss is dominated by initialisation noise), loss_j <=
    loss_i. Why fractions and not equal FLOPs: at the FLOPs where a compute-optimal small run
    ends (annealed), a bigger run is still early in its schedule and *should* be worse there -
    otherwise the small run was not compute-optimal. At equal schedule phase the bigger run has
    more parameters and more tokens behind it, so it must be lower; when it is not, its learning
    rate (or data order, or a bug) is wrong.

(a) is a statistical test, because isoFLOP data are many independent, noisy runs, often at
scattered FLOPs (Chinchilla's 240 runs sit at 122 distinct 2-digit FLOPs). Its rules, each
explained where it is coded below:

1. Bins: runs without a stated budget are grouped into isoFLOP bins of nearly equal FLOPs
   (``isoflop_bins``: a bin spans at most a factor ``bin_width``, default 1.25); stated budgets
   keep their exact groups. The fits keep their own grouping (``laws.base.group_budgets``).
2. Closeness: two bins less than ``min_ratio`` (default 1.5) apart in compute are not compared.
3. Reference: the smaller bin's least-squares parabola in log N (its isoFLOP profile); each run of
   the bigger bin inside the smaller bin's sampled sizes is one comparison.
4. Noise: sigma, the pooled residual scatter of the profiles around their parabolas, each bigger
   bin judged with the scatter of the *other* bins (so a crossing cannot inflate its own yardstick).
5. Tolerance: a run is a violation when it exceeds the reference by more than t * sigma * sqrt(1+h)
   (h: the reference's leverage there, sigma^2 h its variance), t the Student-t quantile for a
   one-sided family-wise error ALPHA = 0.05 split over all comparisons (Bonferroni).

docs/crossing.md states the measured false-alarm and detection rates (benchmarks/bench_crossing.py).

(b) and (c) are judged on one fixed validation set (paired: its sampling noise cancels) with fixed
tolerances. LOSS_TOL, 0.01 in loss units (nats or bits per byte), is twice the seed-to-seed spread
we measured for the final validation bpb of cpu-preset models (0.004-0.006 over seeds of d1, d3
and d5 at 3e11 FLOPs). CORE is an average of accuracies over a few thousand examples, so its noise
is ~0.01 (the default core_tol). They stay fixed: a miniseries has one run per size, so its noise
cannot be measured from it, and its members are by design far apart in compute.

A crossing almost always means the setup is broken, most often a learning rate that does not
transfer across depths; the summary points to `miniseries lr-sweep`.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri, stdtrit

from miniseries.laws.base import Run

LOSS_TOL = 0.01
CORE_TOL = 0.01
BURN_IN = 0.2
HINT = "check LR transfer across depths (`miniseries lr-sweep`)"

# Bins: a planned budget's runs scatter around it (step counts are rounded, FLOP counts differ by
# convention, digitised runs carry read-off error), typically by up to ~10%. Runs within +-10% of
# one budget lie within a factor 1.1/0.9 = 1.22 of each other, so a bin may span a factor 1.25;
# planned budgets are 2x or more apart (nanochat 1e18/3e18/6e18, Chinchilla's paper 6e18..3e21),
# so two of them never share a bin.
BIN_WIDTH = 1.25
# Closeness: at fixed N a bigger budget's loss is lower by about |dL/dlnC| ln(C2/C1). Chinchilla's
# law gives |dL/dlnC| = beta B / D^beta ~ 0.1-0.3 nats at the optimum of 1e21-1e18 FLOPs, so 1.5
# (ln 1.5 = 0.41) makes the expected gap 0.04-0.12 nats, several times a typical run's scatter
# (0.01-0.03), while nearly equal budgets (within ~10%) differ by 0.01-0.03 nats, no more than
# that scatter, and say nothing about nesting. 1.5 is above BIN_WIDTH (two halves of one
# scattered budget are never compared) and below the 2x spacing of planned sweeps (no planned pair
# is skipped).
MIN_RATIO = 1.5
# Family-wise false-alarm probability of the isoFLOP check when every pair is exactly tied (the
# worst nested case): the usual 5%. With real gaps between budgets it is far lower.
ALPHA = 0.05
# The per-run noise assumed when no profile has more runs than parabola coefficients: the
# seed-to-seed spread behind LOSS_TOL (LOSS_TOL is twice it).
SEED_NOISE = LOSS_TOL / 2


@dataclass(frozen=True)
class Curve:
    """One run of a miniseries: its evaluation points (cumulative training FLOPs, loss)."""

    name: str
    flops: tuple[float, ...]
    loss: tuple[float, ...]
    core: float | None = None  # final CORE, where evaluated

    @property
    def total_flops(self) -> float:
        return float(self.flops[-1])

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])


@dataclass(frozen=True)
class Violation:
    kind: str  # isoflop | final-loss | final-core | curve
    runs: tuple[str, str]  # (smaller, bigger)
    at: float  # where: N (isoflop) or FLOPs (final-*, curve)
    excess: float  # by how much the bigger one is worse, in loss (or CORE) units
    tol: float | None = None  # the tolerance it exceeded there

    def describe(self) -> str:
        where = f"N={self.at:.3g}" if self.kind == "isoflop" else f"{self.at:.3g} FLOPs"
        beyond = f" (tolerance {self.tol:.4f})" if self.tol is not None else ""
        return (
            f"{self.kind}: {self.runs[1]} worse than {self.runs[0]} by {self.excess:.4f}{beyond} "
            f"at {where}"
        )

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "runs": list(self.runs),
            "at": self.at,
            "excess": self.excess,
            "tol": self.tol,
        }


# ---------------------------------------------------------------------------------------------
# isoFLOP bins and profiles


def isoflop_bins(runs: list[Run], bin_width: float = BIN_WIDTH) -> list[tuple[float, list[Run]]]:
    """isoFLOP bins for the crossing check, ascending in compute: (C, runs).

    Runs with a stated budget keep their exact groups (C = the budget): the user said which runs
    belong together. The others are sorted by FLOPs and cut greedily: a run more than a factor
    ``bin_width`` above its bin's first (smallest) run starts a new bin, so no bin spans more than
    that factor, and the rule needs no guess at where the planned budgets were. C = the geometric
    mean of the bin's FLOPs.
    """
    if bin_width < 1:
        raise ValueError(f"bin_width must be >= 1 (a factor in FLOPs), got {bin_width}")
    stated: dict[float, list[Run]] = {}
    loose: list[list[Run]] = []
    for r in sorted(runs, key=lambda r: r.flops):
        if r.budget is not None:
            stated.setdefault(r.budget, []).append(r)
        elif loose and r.flops <= loose[-1][0].flops * bin_width:
            loose[-1].append(r)
        else:
            loose.append([r])
    out = list(stated.items())
    out += [(float(np.exp(np.mean(np.log([r.flops for r in rs])))), rs) for rs in loose]
    return sorted(out, key=lambda t: t[0])


@dataclass(frozen=True, eq=False)
class Profile:
    """One bin's loss against x = log10 N, and its reference curve: the least-squares parabola
    (the shape the isoFLOP fit assumes), or a line or a constant when the bin has only two or one
    distinct sizes. ``cov`` is (X'X)^-1, so sigma^2 h with h = v' cov v is the variance of the
    fitted value at x (v = powers of x - x0); ``rss`` and ``dof`` measure the scatter around it."""

    budget: float
    x: np.ndarray
    y: np.ndarray
    x0: float
    coef: np.ndarray
    cov: np.ndarray
    rss: float
    dof: int

    @classmethod
    def fit(cls, budget: float, runs: list[Run]) -> "Profile":
        x = np.log10([r.params for r in runs])
        y = np.array([r.loss for r in runs], dtype=float)
        x0 = float(x.mean())  # centred: a well-conditioned fit
        deg = min(2, len(np.unique(x)) - 1)
        design = np.vander(x - x0, deg + 1)
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        rss = float(np.sum((y - design @ coef) ** 2))
        return cls(budget, x, y, x0, coef, np.linalg.pinv(design.T @ design), rss, len(x) - deg - 1)

    def covers(self, x: np.ndarray) -> np.ndarray:
        """Inside the sizes this bin sampled: the parabola is never extrapolated."""
        return (x >= self.x.min()) & (x <= self.x.max())

    def at(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fitted loss, leverage h) at log10 sizes x."""
        v = np.vander(np.asarray(x, float) - self.x0, len(self.coef))
        return v @ self.coef, np.einsum("ij,jk,ik->i", v, self.cov, v)


def pooled_noise(profiles: list[Profile], leave_out: int | None = None) -> tuple[float, int]:
    """(sigma, dof): the pooled residual scatter of the profiles around their reference curves,
    sqrt(sum RSS / sum dof), without profile ``leave_out``; (nan, 0) when no profile has more runs
    than coefficients. Residual scatter is what one run's loss varies by at fixed budget and size
    - seed, data order, FLOPs scatter inside a bin - which is the noise a comparison must beat;
    profiles that are not quite parabolas make it larger, never smaller (conservative)."""
    kept = [p for i, p in enumerate(profiles) if i != leave_out]
    dof = sum(p.dof for p in kept)
    return (math.sqrt(sum(p.rss for p in kept) / dof), dof) if dof else (math.nan, 0)


def _noise_for(profiles: list[Profile], j: int) -> tuple[float, int]:
    """The noise bin j's runs are judged with: the other bins' pooled scatter. Left out because a
    real crossing bends bin j's own profile and inflates its residuals, and because it makes each
    comparison an exact t statistic (the compared run is independent of the scatter it is divided
    by). Fallbacks: all bins when only bin j has residuals; SEED_NOISE when none has."""
    for noise in (pooled_noise(profiles, leave_out=j), pooled_noise(profiles)):
        if noise[1]:
            return noise
    return SEED_NOISE, 0


def _quantile(p: float, dof: int) -> float:
    """Student-t quantile with ``dof`` degrees of freedom (normal when the noise is assumed): few
    residuals give an uncertain sigma, and t widens the tolerance for it."""
    return float(stdtrit(dof, p)) if dof else float(ndtri(p))


@dataclass(frozen=True)
class IsoflopRule:
    """What the isoFLOP check compared and with which tolerance: printed with every verdict."""

    bin_width: float
    min_ratio: float
    alpha: float
    n_bins: int
    n_pairs: int  # pairs of bins compared
    n_close: int  # pairs skipped as too close in compute
    n_tests: int  # runs compared, over all pairs: the Bonferroni count
    sigma: float  # pooled over all bins (each bin is judged with the others')
    dof: int
    k: float  # the t quantile at that dof
    tol_range: tuple[float, float, float] | None  # smallest, median, largest tolerance applied
    given_tol: float | None = None  # a fixed tolerance the caller gave instead
    closest: float | None = None  # the largest excess / tolerance over all comparisons

    def describe(self) -> str:
        bins = (
            f"{self.n_bins} bins (FLOPs within ×{self.bin_width:g}; stated budgets as given); "
            f"{self.n_pairs} pairs ≥{self.min_ratio:g}× apart compared, {self.n_close} closer "
            "skipped"
        )
        if self.given_tol is not None:
            return f"{bins}; tolerance {self.given_tol:g} (given)"
        if not self.n_tests:
            return f"{bins}; no run inside a smaller budget's sizes to compare"
        lo, mid, hi = self.tol_range
        noise = (
            f"σ={self.sigma:.4f} from parabola residuals ({self.dof} dof)"
            if self.dof
            else f"σ={self.sigma:g} assumed (no profile with residuals)"
        )
        return (
            f"{bins}; tolerance t·σ·√(1+h), median {mid:.4f} ({lo:.4f}–{hi:.4f}), t={self.k:.2f} "
            f"for α={self.alpha:g} over {self.n_tests} comparisons (Bonferroni), {noise}"
        )

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["tol_range"] = list(self.tol_range) if self.tol_range else None
        d["sigma"] = self.sigma if math.isfinite(self.sigma) else None
        return d | {"describe": self.describe()}


def judge_isoflop(
    runs: list[Run],
    tol: float | None = None,
    bin_width: float = BIN_WIDTH,
    min_ratio: float = MIN_RATIO,
    alpha: float = ALPHA,
) -> tuple[list[Violation], IsoflopRule]:
    """(a) with its rule: every pair of bins C1 < C2 at least ``min_ratio`` apart, every run of C2
    inside C1's sampled sizes against C1's reference curve. ``tol``: a fixed tolerance in loss
    units instead of the noise-scaled one. One violation per pair: its largest excess."""
    profiles = [Profile.fit(c, rs) for c, rs in isoflop_bins(runs, bin_width)]
    tests = []  # (i, j, x, excess, sqrt(1 + h))
    n_pairs = n_close = 0
    for i, ref in enumerate(profiles):
        for j in range(i + 1, len(profiles)):
            if profiles[j].budget < min_ratio * ref.budget:
                n_close += 1
                continue
            n_pairs += 1
            inside = ref.covers(profiles[j].x)
            x, y = profiles[j].x[inside], profiles[j].y[inside]
            fitted, h = ref.at(x)
            tests += [(i, j, *t) for t in zip(x, y - fitted, np.sqrt(1 + h))]
    m = len(tests)
    p = 1 - alpha / max(m, 1)  # Bonferroni: valid however the comparisons depend on each other
    scale = {j: _noise_for(profiles, j) for j in {t[1] for t in tests}}
    limits = [
        tol if tol is not None else _quantile(p, scale[j][1]) * scale[j][0] * s
        for _, j, _, _, s in tests
    ]
    worst: dict[tuple[int, int], tuple[float, float, float]] = {}
    for (i, j, x, excess, _), limit in zip(tests, limits):
        if excess > limit and excess > worst.get((i, j), (-np.inf,))[0]:
            worst[(i, j)] = (excess, x, limit)
    violations = [
        Violation(
            "isoflop",
            (f"C={profiles[i].budget:.3g}", f"C={profiles[j].budget:.3g}"),
            float(10**x),
            float(excess),
            float(limit),
        )
        for (i, j), (excess, x, limit) in sorted(worst.items())
    ]
    sigma, dof = pooled_noise(profiles)
    rule = IsoflopRule(
        bin_width=bin_width,
        min_ratio=min_ratio,
        alpha=alpha,
        n_bins=len(profiles),
        n_pairs=n_pairs,
        n_close=n_close,
        n_tests=m,
        sigma=sigma if dof else SEED_NOISE,
        dof=dof,
        k=_quantile(p, dof),
        tol_range=tuple(float(q) for q in np.quantile(limits, [0, 0.5, 1])) if limits else None,
        given_tol=tol,
        closest=max((float(t[3] / lim) for t, lim in zip(tests, limits) if lim > 0), default=None),
    )
    return violations, rule


def check_isoflop(
    runs: list[Run],
    tol: float | None = None,
    bin_width: float = BIN_WIDTH,
    min_ratio: float = MIN_RATIO,
    alpha: float = ALPHA,
) -> list[Violation]:
    """(a): the violations of ``judge_isoflop`` alone."""
    return judge_isoflop(runs, tol, bin_width, min_ratio, alpha)[0]


# ---------------------------------------------------------------------------------------------
# The miniseries: final values and training curves


def _profile(xs, ys):
    """Sorted, duplicate-x-averaged points of one curve."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ux, inv = np.unique(xs, return_inverse=True)
    return ux, np.bincount(inv, ys) / np.bincount(inv)


def _worst_excess(x1, y1, x2, y2, lo, tol):
    """Largest y2 - y1 over the shared range [lo, min(max x1, max x2)], both interpolated linearly
    on the union of their points there; (excess, x) if it exceeds tol else None."""
    hi = min(x1[-1], x2[-1])
    lo = max(lo, x1[0], x2[0])
    if hi <= lo:
        return None
    grid = np.concatenate([[lo, hi], x1, x2])
    grid = np.unique(grid[(grid >= lo) & (grid <= hi)])
    diff = np.interp(grid, x2, y2) - np.interp(grid, x1, y1)
    i = int(np.argmax(diff))
    return (float(diff[i]), float(grid[i])) if diff[i] > tol else None


def check_series(
    curves: list[Curve], tol: float = LOSS_TOL, core_tol: float = CORE_TOL, burn_in: float = BURN_IN
) -> list[Violation]:
    """(b) and (c) for a miniseries; curves are ordered here by total FLOPs."""
    curves = sorted(curves, key=lambda c: c.total_flops)
    out = []
    for i, a in enumerate(curves):
        for b in curves[i + 1 :]:
            names = (a.name, b.name)
            if b.final_loss - a.final_loss > tol:
                out.append(
                    Violation("final-loss", names, b.total_flops, b.final_loss - a.final_loss, tol)
                )
            if a.core is not None and b.core is not None and a.core - b.core > core_tol:
                out.append(Violation("final-core", names, b.total_flops, a.core - b.core, core_tol))
            xa, ya = _profile(np.asarray(a.flops) / a.total_flops, a.loss)
            xb, yb = _profile(np.asarray(b.flops) / b.total_flops, b.loss)
            hit = _worst_excess(xa, ya, xb, yb, burn_in if burn_in > 0 else -np.inf, tol)
            if hit:  # reported at b's FLOPs at that fraction of its run
                out.append(Violation("curve", names, hit[1] * b.total_flops, hit[0], tol))
    return out


# ---------------------------------------------------------------------------------------------
# The verdict


@dataclass(frozen=True)
class Verdict:
    ok: bool
    violations: list = field(default_factory=list)
    n_profiles: int = 0
    n_runs: int = 0
    isoflop: IsoflopRule | None = None  # the isoFLOP rule and tolerance, when runs were checked
    series_tol: tuple[float, float] | None = None  # (loss, CORE) tolerances, when curves were

    def rules(self) -> str:
        """The rules and tolerances used, for the summary line."""
        parts = []
        if self.isoflop:
            parts.append(f"isoFLOP: {self.isoflop.describe()}")
        if self.series_tol:
            parts.append(
                f"miniseries: tolerance {self.series_tol[0]:g} loss, {self.series_tol[1]:.3g} CORE"
            )
        return " | ".join(parts)

    def headline(self) -> str:
        """The verdict in one short line (the summary without the rules it applied)."""
        return self.summary(with_rules=False)

    def summary(self, with_rules: bool = True) -> str:
        rules = f". {self.rules()}" if self.rules() and with_rules else ""  # no [brackets]
        if self.ok:
            return (
                f"curves nested: no crossings in {self.n_profiles} isoFLOP profiles and "
                f"{self.n_runs} miniseries runs{rules}"
            )
        kinds: dict[str, int] = {}
        for v in self.violations:
            kinds[v.kind] = kinds.get(v.kind, 0) + 1
        worst = max(self.violations, key=lambda v: v.excess)
        counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
        return (
            f"CROSSING: {len(self.violations)} violations ({counts}; worst {worst.describe()}) "
            f"— {HINT}{rules}"
        )

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "n_profiles": self.n_profiles,
            "n_runs": self.n_runs,
            "isoflop_rule": self.isoflop.to_dict() if self.isoflop else None,
            "series_tol": list(self.series_tol) if self.series_tol else None,
            "violations": [v.to_dict() for v in self.violations],
        }


def check(
    runs: list[Run] | None = None,
    curves: list[Curve] | None = None,
    tol: float | None = None,
    core_tol: float = CORE_TOL,
    burn_in: float = BURN_IN,
    bin_width: float = BIN_WIDTH,
    min_ratio: float = MIN_RATIO,
    alpha: float = ALPHA,
) -> Verdict:
    """All checks on whatever is given: isoFLOP runs, a miniseries' curves, or both. ``tol``: a
    fixed loss tolerance for both (default: noise-scaled for isoFLOP runs, LOSS_TOL for curves)."""
    violations = []
    rule = None
    series_tol = None
    if runs:
        found, rule = judge_isoflop(runs, tol, bin_width, min_ratio, alpha)
        violations += found
    if curves:
        series_tol = (LOSS_TOL if tol is None else tol, core_tol)
        violations += check_series(curves, series_tol[0], core_tol, burn_in)
    n_profiles = rule.n_bins if rule else 0
    return Verdict(not violations, violations, n_profiles, len(curves or []), rule, series_tol)
