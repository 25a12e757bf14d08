"""The crossing detector: more compute must mean lower loss, everywhere it can be compared.

Three checks, each reporting every violation with the runs involved:

(a) isoFLOP profiles are nested: for budgets C1 < C2, at every N both profiles cover
    (each profile interpolated linearly in log N over the shared range), loss(C2) <= loss(C1).
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

"Beyond noise": a difference counts only when it exceeds a tolerance. The default, 0.01 in loss
units (nats or bits per byte), is twice the seed-to-seed spread we measured for the final
validation bpb of cpu-preset models on the fixed validation set (0.004-0.006 over seeds of d1,
d3 and d5 at 3e11 FLOPs; paired comparisons on one set, so its own sampling noise cancels).
CORE is an average of accuracies over a few thousand examples, so its noise is ~0.01 (the
default core_tol).

A crossing almost always means the setup is broken, most often a learning rate that does not
transfer across depths; the summary points to `miniseries lr-sweep`.
"""

from dataclasses import dataclass, field

import numpy as np

from miniseries.laws.base import Run, group_budgets

LOSS_TOL = 0.01
CORE_TOL = 0.01
BURN_IN = 0.2
HINT = "check LR transfer across depths (`miniseries lr-sweep`)"


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

    def describe(self) -> str:
        where = f"N={self.at:.3g}" if self.kind == "isoflop" else f"{self.at:.3g} FLOPs"
        return (
            f"{self.kind}: {self.runs[1]} worse than {self.runs[0]} by {self.excess:.4f} at {where}"
        )

    def to_dict(self) -> dict:
        return {"kind": self.kind, "runs": list(self.runs), "at": self.at, "excess": self.excess}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    violations: list = field(default_factory=list)
    n_profiles: int = 0
    n_runs: int = 0

    def summary(self) -> str:
        if self.ok:
            return (
                f"curves nested: no crossings in {self.n_profiles} isoFLOP profiles and "
                f"{self.n_runs} miniseries runs"
            )
        kinds: dict[str, int] = {}
        for v in self.violations:
            kinds[v.kind] = kinds.get(v.kind, 0) + 1
        worst = max(self.violations, key=lambda v: v.excess)
        counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
        return (
            f"CROSSING: {len(self.violations)} violations ({counts}; worst {worst.describe()}) "
            f"— {HINT}"
        )

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "n_profiles": self.n_profiles,
            "n_runs": self.n_runs,
            "violations": [v.to_dict() for v in self.violations],
        }


def _profile(xs, ys):
    """Sorted, duplicate-x-averaged points of one profile."""
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


def check_isoflop(runs: list[Run], tol: float = LOSS_TOL) -> list[Violation]:
    """(a): every pair of budgets C1 < C2 must be nested over the sizes both sampled."""
    groups = [
        (c, _profile(np.log10([r.params for r in rs]), [r.loss for r in rs]))
        for c, rs in group_budgets(runs)
    ]
    out = []
    for i, (c1, (x1, y1)) in enumerate(groups):
        for c2, (x2, y2) in groups[i + 1 :]:
            hit = _worst_excess(x1, y1, x2, y2, -np.inf, tol)
            if hit:
                out.append(
                    Violation("isoflop", (f"C={c1:.3g}", f"C={c2:.3g}"), 10 ** hit[1], hit[0])
                )
    return out


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
                    Violation("final-loss", names, b.total_flops, b.final_loss - a.final_loss)
                )
            if a.core is not None and b.core is not None and a.core - b.core > core_tol:
                out.append(Violation("final-core", names, b.total_flops, a.core - b.core))
            xa, ya = _profile(np.asarray(a.flops) / a.total_flops, a.loss)
            xb, yb = _profile(np.asarray(b.flops) / b.total_flops, b.loss)
            hit = _worst_excess(xa, ya, xb, yb, burn_in if burn_in > 0 else -np.inf, tol)
            if hit:  # reported at b's FLOPs at that fraction of its run
                out.append(Violation("curve", names, hit[1] * b.total_flops, hit[0]))
    return out


def check(
    runs: list[Run] | None = None,
    curves: list[Curve] | None = None,
    tol: float = LOSS_TOL,
    core_tol: float = CORE_TOL,
    burn_in: float = BURN_IN,
) -> Verdict:
    """All checks on whatever is given: isoFLOP runs, a miniseries' curves, or both."""
    violations = []
    n_profiles = 0
    if runs:
        violations += check_isoflop(runs, tol)
        n_profiles = len(group_budgets(runs))
    if curves:
        violations += check_series(curves, tol, core_tol, burn_in)
    return Verdict(not violations, violations, n_profiles, len(curves or []))
