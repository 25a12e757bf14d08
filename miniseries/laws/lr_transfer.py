"""Does the learning rate transfer across depths? Pure numpy, no torch.

An LR sweep trains a few depths at a grid of LR multipliers (x the preset's LRs). Per depth the
optimum is the vertex of a parabola in log2(LR) through the best grid point and its two
neighbours (``lr_optimum``); an optimum on the first or last grid point cannot be located and is
flagged ("widen the grid").

Why a *loss-penalty* criterion for "the optimum is flat across depths" (``transfer_check``): the
scaling-law sweep trains every depth at one common LR multiplier, so what matters is not how far
apart the per-depth optima are in log2 units but how much loss each depth loses by being trained at
the common LR instead of its own optimum. A wide, flat optimum tolerates a big shift; a sharp one
does not. Near the optimum the loss is L*(1 + k (x - x*)^2) with x = log2 LR, so the relative
penalty of depth d at the common x is k_d (x - x*_d)^2. The common x minimises the sum of these
penalties (a k-weighted mean of the optima). The default tolerance, 0.5% of the loss, is a few
times the seed-to-seed noise of a small GPT's final loss (~0.1-0.2%) and small against the loss
differences an isoFLOP profile resolves (1-5% between neighbouring depths): a penalty under it
cannot move a parabola vertex by a sampled size, one above it can fake an optimum.
"""

import math
from dataclasses import dataclass, field

import numpy as np

PENALTY_TOL = 0.005  # relative loss penalty of the common LR allowed per depth (see above)


def _grid(points) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique log2 LR and the mean loss at each (repeated seeds are averaged)."""
    arr = np.array([(float(lr), float(loss)) for lr, loss in points], dtype=float)
    if arr.size == 0 or np.any(arr[:, 0] <= 0) or not np.all(np.isfinite(arr)):
        raise ValueError("LR sweep points must be (positive lr_mult, finite loss) pairs")
    x = np.log2(arr[:, 0])
    ux, inv = np.unique(x, return_inverse=True)
    return ux, np.bincount(inv, arr[:, 1]) / np.bincount(inv)


def lr_optimum(points: list[tuple[float, float]]) -> dict:
    """The best LR multiplier of one depth: parabola vertex in log2 LR through the best grid point
    and its neighbours, clamped to their span.

    Returns lr_mult, log2_lr, loss (at the vertex), curvature k (relative loss per log2 unit
    squared), best_grid (the best measured multiplier), edge (optimum on the grid's first/last
    point) and flag (why the optimum is unreliable, or None).
    """
    x, y = _grid(points)
    i = int(np.argmin(y))
    out = {
        "lr_mult": float(2 ** x[i]),
        "log2_lr": float(x[i]),
        "loss": float(y[i]),
        "curvature": math.nan,
        "best_grid": float(2 ** x[i]),
        "n_points": int(len(x)),
        "edge": False,
        "flag": None,
    }
    if len(x) < 3:
        out["flag"] = f"only {len(x)} LR value(s): need 3 to locate an optimum"
        return out
    if i in (0, len(x) - 1):
        side = "smallest" if i == 0 else "largest"
        out["edge"] = True
        out["flag"] = f"best loss at the {side} LR multiplier (grid edge): widen the LR grid"
        return out
    xs, ys = x[i - 1 : i + 2], y[i - 1 : i + 2]
    c2, c1, c0 = np.polyfit(xs, ys, 2)
    xv = -c1 / (2 * c2) if c2 > 0 else x[i]
    xv = float(np.clip(xv, xs[0], xs[-1]))
    loss = float(np.polyval((c2, c1, c0), xv))
    out.update(lr_mult=float(2**xv), log2_lr=xv, loss=loss, curvature=float(max(c2, 0.0) / loss))
    return out


@dataclass(frozen=True)
class Verdict:
    """Whether one LR multiplier serves every depth; violations name the depths that lose."""

    ok: bool
    optima: dict  # depth -> lr_optimum dict
    common_lr: float  # the LR multiplier that minimises the total penalty
    penalties: dict  # depth -> relative loss penalty at common_lr
    spread_log2: float  # max - min of the per-depth optima, log2 units
    drift: float  # slope of log2 optimum vs log2 depth (width ∝ depth: muP-like drift is -1)
    tol: float
    violations: list = field(default_factory=list)

    def summary(self) -> str:
        n = len(self.optima)
        drift = (
            f", drift {self.drift:+.2f} per doubling of depth" if math.isfinite(self.drift) else ""
        )
        worst = max(self.penalties.values(), default=0.0)
        depths = f"{n} depth{'s' * (n != 1)}"
        head = (
            f"optimum spans {self.spread_log2:.2f} log2 units over {depths}{drift}; at the common "
            f"×{self.common_lr:.3g} the worst depth loses {worst:.2%} (tol {self.tol:.1%})"
        )
        if self.ok:
            return f"LR transfers: {head}"
        return f"LR does NOT transfer: {head}; " + "; ".join(self.violations)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "optima": {str(d): o for d, o in self.optima.items()},
            "common_lr": self.common_lr,
            "penalties": {str(d): p for d, p in self.penalties.items()},
            "spread_log2": self.spread_log2,
            "drift": self.drift,
            "tol": self.tol,
            "violations": list(self.violations),
        }


def transfer_check(
    results: dict[int, list[tuple[float, float]]], tol: float = PENALTY_TOL
) -> Verdict:
    """Per-depth optima, the common LR, and each depth's relative loss penalty there.

    A depth violates when its optimum is at the grid edge (unknown, so unknown penalty) or when
    training it at the common LR costs more than ``tol`` of its loss.
    """
    if not results:
        raise ValueError("no LR sweep results")
    optima = {d: lr_optimum(pts) for d, pts in sorted(results.items())}
    depths = list(optima)
    x = np.array([optima[d]["log2_lr"] for d in depths])
    k = np.array([optima[d]["curvature"] for d in depths])
    k = np.where(np.isfinite(k), k, 0.0)
    common = float(np.sum(k * x) / k.sum()) if k.sum() > 0 else float(np.median(x))
    penalties = {d: float(ki * (common - xi) ** 2) for d, ki, xi in zip(depths, k, x)}
    violations = []
    for d in depths:
        o = optima[d]
        if o["flag"]:
            violations.append(f"depth {d}: {o['flag']}")
        elif penalties[d] > tol:
            violations.append(
                f"depth {d}: optimum ×{o['lr_mult']:.3g} loses {penalties[d]:.2%} at the common "
                f"×{2**common:.3g}"
            )
    if len(depths) < 2:
        violations.append(f"only depth {depths[0]} swept: transfer needs 2+ depths")
    drift = math.nan
    if len(depths) >= 2 and len(set(depths)) >= 2 and min(depths) > 0:
        drift = float(np.polyfit(np.log2(depths), x, 1)[0])
    return Verdict(
        ok=not violations,
        optima=optima,
        common_lr=float(2**common),
        penalties=penalties,
        spread_log2=float(x.max() - x.min()),
        drift=drift,
        tol=tol,
        violations=violations,
    )
