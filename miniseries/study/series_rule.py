"""Which tokens:params ratio each member of the miniseries trains at (the demo's series stage).

The law says D*/N* changes with compute as C^(b − a). When the bootstrap interval of b − a excludes
0, one ratio read at one budget is wrong for the members far from it, so each depth trains at the
ratio the law gives at that depth's own compute: C_d solves N*(C_d) = N_d, and D_d = C_d / fpt(d)
spends it (the trainer's FLOPs per token). When the interval holds 0 the constant ratio is kept.
No torch.
"""

import math

from miniseries.accounting import flops_per_token, param_counts
from miniseries.config import Preset


def series_ratios(fit, depths, preset: Preset, convention: str) -> tuple[dict[int, float], str]:
    """({depth: ratio}, the rule used, in words) from an isoFLOP ScalingFit."""
    t = fit.ratio_trend_interval
    constant = {d: fit.ratio for d in depths}
    if fit.n_law is None or not math.isfinite(fit.ratio):
        return {d: preset.ratio for d in depths}, f"the preset's ratio {preset.ratio:g} (no law)"
    trend = f"the ratio's trend b − a {t.point:+.3f} [{t.lo:+.3f}, {t.hi:+.3f}]"
    if not (math.isfinite(t.lo) and math.isfinite(t.hi)) or t.lo <= 0 <= t.hi:
        return constant, f"one ratio, {fit.ratio:.2f}, for every depth ({trend} holds 0)"
    out = {}
    for d in depths:
        cfg = preset.model_config(d)
        n = param_counts(cfg).by_convention(convention)
        c = (n / fit.n_law.k) ** (1 / fit.n_law.exponent)  # N*(C) = N_d
        out[d] = c / flops_per_token(cfg) / n
    per = ", ".join(f"d{d} {r:.2f}" for d, r in out.items())
    return out, f"each depth at the ratio of its own compute ({trend} excludes 0): {per}"
