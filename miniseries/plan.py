"""The one knob: from a compute budget (or a depth) to a concrete run.

Three questions a user asks, one function each:
  plan_for_flops(C, ...)      which depth is compute-optimal for C at tokens = ratio x params?
  plan_for_depth(d, ratio)    how many tokens / steps / FLOPs for depth d at that ratio?
  plan_isoflop(d, C)          how many tokens does depth d get on an isoFLOP profile of budget C?
Token counts are whole optimizer steps of the preset's batch, so the FLOPs reported are exactly
what the trainer will spend (flops_per_token x tokens).
"""

import math
from dataclasses import asdict, dataclass

from miniseries.accounting import flops_per_token, param_counts
from miniseries.config import MAX_DEPTH, Preset, check_convention, check_depth, model_config
from miniseries.errors import UserError


@dataclass(frozen=True)
class Plan:
    preset: str
    depth: int
    d_model: int
    n_heads: int
    params_total: int
    params_kaplan: int
    params_matrices: int
    params_effective: int  # flops_per_token / 6
    convention: str  # which count `ratio` divides by
    tokens: int
    ratio: float  # tokens / params[convention]
    steps: int
    batch_tokens: int
    flops_per_token: int
    flops: float
    target_flops: float | None = None

    def params(self, convention: str | None = None) -> int:
        return getattr(self, f"params_{check_convention(convention or self.convention)}")

    def to_dict(self) -> dict:
        return asdict(self)


def _make_plan(preset: Preset, depth: int, steps: int, convention: str, target=None) -> Plan:
    cfg = model_config(depth, preset)
    counts = param_counts(cfg)
    tokens = steps * preset.batch_tokens
    fpt = flops_per_token(cfg)
    return Plan(
        preset=preset.name,
        depth=depth,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        params_total=counts.total,
        params_kaplan=counts.kaplan,
        params_matrices=counts.matrices,
        params_effective=counts.effective,
        convention=convention,
        tokens=tokens,
        ratio=tokens / counts.by_convention(convention),
        steps=steps,
        batch_tokens=preset.batch_tokens,
        flops_per_token=fpt,
        flops=float(fpt) * tokens,
        target_flops=target,
    )


def _steps_for_tokens(tokens: float, preset: Preset) -> int:
    return max(1, round(tokens / preset.batch_tokens))


def batched(preset: Preset, tokens: float) -> Preset:
    """The preset at the batch its batch rule gives ``tokens`` tokens (itself when it is off)."""
    return preset.at_batch(preset.batch_for(tokens)) if preset.batch_exponent else preset


def plan_for_depth(
    depth: int, preset: Preset, ratio: float | None = None, convention: str | None = None
) -> Plan:
    """Depth d trained to ratio x params[convention] tokens (the miniseries run)."""
    convention = check_convention(convention or preset.convention)
    ratio = preset.ratio if ratio is None else ratio
    if not (ratio > 0 and math.isfinite(ratio)):
        raise UserError(f"tokens:params ratio must be a positive number, got {ratio!r}")
    n = param_counts(model_config(check_depth(depth), preset)).by_convention(convention)
    preset = batched(preset, ratio * n)
    return _make_plan(preset, depth, _steps_for_tokens(ratio * n, preset), convention)


def plan_isoflop(depth: int, flops: float, preset: Preset, convention: str | None = None) -> Plan:
    """Depth d on the isoFLOP profile of budget C: as many whole steps as C buys."""
    convention = check_convention(convention or preset.convention)
    _check_budget(flops)
    fpt = flops_per_token(model_config(check_depth(depth), preset))
    preset = batched(preset, flops / fpt)
    return _make_plan(preset, depth, _steps_for_tokens(flops / fpt, preset), convention, flops)


def plan_for_steps(depth: int, steps: int, preset: Preset, convention: str | None = None) -> Plan:
    if not isinstance(steps, int) or steps < 1:
        raise UserError(f"steps must be a positive integer, got {steps!r}")
    convention = check_convention(convention or preset.convention)
    return _make_plan(preset, check_depth(depth), steps, convention)


def optimal_flops(depth: int, preset: Preset, ratio: float, convention: str) -> float:
    """FLOPs of depth d's compute-optimal run, before rounding to whole steps."""
    cfg = model_config(depth, preset)
    return flops_per_token(cfg) * ratio * param_counts(cfg).by_convention(convention)


def plan_for_flops(
    flops: float,
    preset: Preset,
    ratio: float | None = None,
    convention: str | None = None,
    max_depth: int = MAX_DEPTH,
) -> Plan:
    """The depth whose compute-optimal run best matches C (nearest in log FLOPs), then its tokens
    set so that the run spends C (within one step)."""
    convention = check_convention(convention or preset.convention)
    ratio = preset.ratio if ratio is None else ratio
    _check_budget(flops)
    depths = range(1, max_depth + 1)
    costs = [optimal_flops(d, preset, ratio, convention) for d in depths]
    lo, hi = costs[0] / 2, costs[-1] * 2
    if not lo <= flops <= hi:
        raise UserError(
            f"budget {flops:.3g} FLOPs is outside what the {preset.name} family spans at ratio "
            f"{ratio:g}: {lo:.3g} to {hi:.3g} FLOPs (depths 1 to {max_depth}); pick one in range"
        )
    best = min(depths, key=lambda d: abs(math.log(costs[d - 1] / flops)))
    fpt = flops_per_token(model_config(best, preset))
    preset = batched(preset, flops / fpt)
    steps = _steps_for_tokens(flops / fpt, preset)
    return _make_plan(preset, best, steps, convention, flops)


def _check_budget(flops: float) -> None:
    if not (isinstance(flops, (int, float)) and math.isfinite(flops) and flops > 0):
        raise UserError(f"FLOPs budget must be a positive number (e.g. 1e18), got {flops!r}")
