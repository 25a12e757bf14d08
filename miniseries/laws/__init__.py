"""Scaling-law fits over finished runs: numpy and scipy only, no torch.

Two independent routes to the compute-optimal allocation (Hoffmann et al. 2022):

- isoFLOP ("Approach 2", laws/isoflop.py): per budget C, a parabola of loss against log10 N; its
  vertex is N*(C). Power laws across budgets: N* = k C^a, D* = k' C^b, and L* = k_L C^s.
- parametric ("Approach 3", laws/parametric.py): L(N, D) = E + A/N^alpha + B/D^beta fitted to every
  run with a Huber loss on log-loss residuals, from Epoch AI's grid of starts.

laws/base.py holds what both share: Run, the one Interval and Prediction types, the CSV reader.
Uncertainty is a seeded bootstrap over runs (percentile 90% confidence intervals). The
parameter-count convention (total / kaplan / matrices) is only a label here: the caller's params
already use it, and every result object carries it so that no number is printed without it.
This module combines the two routes: ``fit_laws``.
"""

from dataclasses import dataclass

from miniseries.errors import UserError
from miniseries.laws.base import Prediction, Run, group_budgets, n_label
from miniseries.laws.isoflop import ScalingFit, fit_isoflop
from miniseries.laws.parametric import ParametricFit, fit_parametric


@dataclass(frozen=True)
class Laws:
    """Everything `miniseries fit` reports; either fit may be None, with the reason in notes."""

    convention: str
    n_runs: int
    isoflop: ScalingFit
    parametric: ParametricFit | None
    notes: tuple[str, ...] = ()

    def predict(self, budget: float) -> list[Prediction]:
        out = [self.isoflop.predict(budget)] if self.isoflop.n_law else []
        return out + ([self.parametric.predict(budget)] if self.parametric else [])

    def to_dict(self) -> dict:
        return {
            "convention": self.convention,
            "n_label": n_label(self.convention),
            "n_runs": self.n_runs,
            "isoflop": self.isoflop.to_dict(),
            "parametric": self.parametric.to_dict() if self.parametric else None,
            "notes": list(self.notes),
        }


def fit_laws(
    runs: list[Run], convention: str = "total", n_bootstrap: int = 1000, seed: int = 0
) -> Laws:
    """The isoFLOP route and the parametric route on the same runs."""
    if not runs:
        raise UserError("no runs to fit")
    if n_bootstrap < 0:
        raise UserError(f"bootstrap resamples must be >= 0, got {n_bootstrap}")
    iso = fit_isoflop(runs, convention, n_bootstrap, seed)
    notes = []
    if iso.n_law is None:
        usable = sum(v.usable for v in iso.vertices)
        notes.append(f"isoFLOP power laws need 2 usable budgets, have {usable}")
    elif iso.resample_note():
        notes.append(iso.resample_note())
    par = None
    n_budgets = len(group_budgets(runs))
    if len(runs) >= 6 and n_budgets >= 2:
        par = fit_parametric(runs, convention, n_bootstrap, seed)
    else:  # at one budget N and D are tied (D = C/6N): A/N^alpha and B/D^beta can't be told apart
        have = f"have {len(runs)} in {n_budgets}"
        notes.append(f"parametric fit needs 6 runs over 2+ budgets, {have}")
    return Laws(convention, len(runs), iso, par, tuple(notes))
