"""Scaling-law fits over finished runs: numpy and scipy only, no torch.

Two independent routes to the compute-optimal allocation (Hoffmann et al. 2022):

- isoFLOP ("Approach 2", laws/isoflop.py): per budget C, a parabola of loss against log10 N; its
  vertex is N*(C). Power laws across budgets: N* = k C^a, D* = k' C^b, and the floored
  L* = E + k C^-gamma. Its own bias on the fitted surface: laws/approach2_bias.py.
- parametric ("Approach 3", laws/parametric.py): L(N, D) = E + A/N^alpha + B/D^beta fitted to every
  run by variable projection, under Huber on log loss and under squared error (both reported).
FLOPs per token as a function of N (laws/fpt.py) converts between N, D and C in both.

laws/base.py holds what both share: Run, the one Interval and Prediction types, the CSV reader.
Uncertainty is a seeded bootstrap over runs (percentile 90% confidence intervals). The
parameter-count convention (total / kaplan / matrices / effective) is only a label here: the
caller's params already use it, and every result object carries it so that no number is printed
without it.
This module combines the two routes: ``fit_laws``.
"""

from dataclasses import dataclass

from miniseries.errors import UserError
from miniseries.laws.approach2_bias import Approach2Bias, approach2_bias
from miniseries.laws.base import Prediction, Run, group_budgets, n_label
from miniseries.laws.fpt import FlopsPerToken
from miniseries.laws.isoflop import ScalingFit, fit_isoflop
from miniseries.laws.parametric import (
    OBJECTIVES,
    ParametricFit,
    check_objective,
    fit_parametric,
    natural,
)


@dataclass(frozen=True)
class Laws:
    """Everything `miniseries fit` reports; any fit may be None, with the reason in notes.

    ``parametric`` is fitted under the chosen objective, ``parametric_other`` under the other
    one: they can disagree on the allocation, and both are shown. ``bias``: what Approach 2
    gets wrong on ``parametric``'s surface at this sampling (laws/approach2_bias.py)."""

    convention: str
    n_runs: int
    isoflop: ScalingFit
    parametric: ParametricFit | None
    notes: tuple[str, ...] = ()
    parametric_other: ParametricFit | None = None
    bias: Approach2Bias | None = None

    @property
    def parametric_fits(self) -> list[ParametricFit]:
        return [p for p in (self.parametric, self.parametric_other) if p is not None]

    def predict(self, budget: float) -> list[Prediction]:
        """isoFLOP (and bias-corrected) and both objectives' parametric predictions."""
        out = []
        if self.isoflop.n_law:
            out.append(self.isoflop.predict(budget))
            if self.bias is not None:
                out.append(self.bias.corrected(out[0]))
        return out + [p.predict(budget) for p in self.parametric_fits]

    def objective_note(self, budget: float) -> str | None:
        """A line when the two objectives' N* intervals at ``budget`` do not overlap."""
        if len(self.parametric_fits) < 2:
            return None
        (p, q) = (f.predict(budget) for f in self.parametric_fits)
        if not (p.n_opt.bounded and q.n_opt.bounded):
            return None
        if p.n_opt.hi < q.n_opt.lo or q.n_opt.hi < p.n_opt.lo:
            ratio = p.n_opt.point / q.n_opt.point
            return (
                f"at C={budget:.3g} the objectives disagree beyond their intervals: N* under "
                f"{self.parametric.objective} is {ratio:.2f}x N* under "
                f"{self.parametric_other.objective}; the choice of objective alone moves the "
                "allocation this much"
            )
        return None

    def to_dict(self, budgets=()) -> dict:
        return {
            "convention": self.convention,
            "n_label": n_label(self.convention),
            "n_runs": self.n_runs,
            "isoflop": self.isoflop.to_dict(),
            "parametric": self.parametric.to_dict() if self.parametric else None,
            "parametric_other": self.parametric_other.to_dict() if self.parametric_other else None,
            "approach2_bias": self.bias.to_dict(budgets) if self.bias else None,
            "notes": list(self.notes),
        }


def fit_laws(
    runs: list[Run],
    convention: str = "total",
    n_bootstrap: int = 1000,
    seed: int = 0,
    objective: str = "huber",
    fpt: FlopsPerToken | None = None,
) -> Laws:
    """The parametric route under both objectives, then the isoFLOP route floored by the chosen
    objective's E, and Approach 2's bias on that objective's surface."""
    if not runs:
        raise UserError("no runs to fit")
    if n_bootstrap < 0:
        raise UserError(f"bootstrap resamples must be >= 0, got {n_bootstrap}")
    check_objective(objective)
    fpt = fpt or FlopsPerToken.from_runs(runs)
    notes = []
    par = other = None
    n_budgets = len(group_budgets(runs))
    if len(runs) >= 6 and n_budgets >= 2:
        par = fit_parametric(runs, convention, n_bootstrap, seed, objective=objective, fpt=fpt)
        rest = next(o for o in OBJECTIVES if o != objective)
        other = fit_parametric(runs, convention, n_bootstrap, seed, objective=rest, fpt=fpt)
    else:  # at one budget N and D are tied (D = C/6N): A/N^alpha and B/D^beta can't be told apart
        have = f"have {len(runs)} in {n_budgets}"
        notes.append(f"parametric fit needs 6 runs over 2+ budgets, {have}")
    floor = (par.E, natural(par.samples)[2]) if par else None
    iso = fit_isoflop(runs, convention, n_bootstrap, seed, fpt=fpt, floor=floor)
    if iso.n_law is None:
        usable = sum(v.usable for v in iso.vertices)
        notes.append(f"isoFLOP power laws need 2 usable budgets, have {usable}")
    elif iso.resample_note():
        notes.append(iso.resample_note())
    bias = approach2_bias(iso, par, runs) if par is not None else None
    return Laws(convention, len(runs), iso, par, tuple(notes), other, bias)
