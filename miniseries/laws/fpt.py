"""Training FLOPs per token as a function of params, fpt(N): what converts between N, D and C.

The 6ND rule says fpt(N) = 6N. Our family's trainer counts more exactly (accounting.py): the
lm_head and the attention scores cost FLOPs, the embedding lookup does not, so fpt(N) / N runs
from ~4.7 to ~7.2 across the cpu family's depths, and a law that turns C into D with one constant
is off by up to ~20% at either end. A ``FlopsPerToken`` is known at some sizes (the family's
depths, or a CSV's runs as flops / tokens) and interpolated between them in log N - log fpt by a
monotone cubic (PCHIP: smooth, so the slope d log fpt / d log N that sets the compute-optimal N is
continuous, and no overshoot between points); past either end, fpt / N is held at that end's
value (the 6ND-like rule with the nearest size's constant). Under the FLOP-consistent count
N_eff = fpt / 6 (convention ``effective``) fpt = 6 N_eff exactly. numpy only, no torch.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.interpolate import PchipInterpolator

from miniseries.accounting import flops_per_token, param_counts
from miniseries.config import MAX_DEPTH, Preset, check_convention, model_config


@dataclass(frozen=True)
class FlopsPerToken:
    """fpt(N) through the points (log N, log fpt), ascending in N."""

    log_n: tuple[float, ...]
    log_fpt: tuple[float, ...]
    source: str  # where the points came from, for printing

    def __call__(self, n) -> np.ndarray:
        return np.exp(self.log_at(np.log(np.asarray(n, float))))

    def log_at(self, log_n) -> np.ndarray:
        """log fpt at log N: PCHIP inside, slope 1 (fpt / N constant) outside."""
        x, y = np.asarray(self.log_n), np.asarray(self.log_fpt)
        log_n = np.asarray(log_n, float)
        if np.ptp(y - x) < 1e-12:  # fpt = c N: exactly
            return y[0] + (log_n - x[0])
        inside = _pchip(x, y)(np.clip(log_n, x[0], x[-1])) if len(x) > 2 else np.interp(log_n, x, y)
        below = y[0] + (log_n - x[0])
        above = y[-1] + (log_n - x[-1])
        return np.where(log_n < x[0], below, np.where(log_n > x[-1], above, inside))

    def per_param(self, n) -> np.ndarray:
        """fpt(N) / N: 6 under the 6ND rule."""
        return self(n) / np.asarray(n, float)

    @property
    def is_6nd(self) -> bool:
        """True when every known point has fpt = 6N (to 1 part in 1e6)."""
        return bool(np.allclose(np.subtract(self.log_fpt, self.log_n), np.log(6), atol=1e-6))

    def to_dict(self) -> dict:
        return {"log_n": list(self.log_n), "log_fpt": list(self.log_fpt), "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "FlopsPerToken":
        return cls(tuple(d["log_n"]), tuple(d["log_fpt"]), d.get("source", ""))

    @classmethod
    def six_nd(cls) -> "FlopsPerToken":
        return cls((0.0, 1.0), (float(np.log(6)), float(np.log(6)) + 1.0), "the 6ND rule")

    @classmethod
    def from_points(cls, params, fpt, source: str) -> "FlopsPerToken":
        """From (N, fpt) pairs; repeated sizes are averaged in log."""
        ln, lf = np.log(np.asarray(params, float)), np.log(np.asarray(fpt, float))
        keys, inv = np.unique(np.round(ln, 9), return_inverse=True)
        count = np.bincount(inv)
        keys, mean = np.bincount(inv, ln) / count, np.bincount(inv, lf) / count
        if len(keys) == 1:  # one size: fpt / N held at its value everywhere
            return cls((float(keys[0]), float(keys[0]) + 1.0), (mean[0], mean[0] + 1.0), source)
        return cls(tuple(map(float, keys)), tuple(map(float, mean)), source)

    @classmethod
    def from_runs(cls, runs) -> "FlopsPerToken":
        """From finished runs: each one's flops / tokens at its params."""
        return cls.from_points(
            [r.params for r in runs],
            [r.flops / r.tokens for r in runs],
            "the runs' FLOPs / tokens",
        )


@lru_cache(maxsize=64)
def _pchip_cached(x: tuple, y: tuple) -> PchipInterpolator:
    return PchipInterpolator(np.array(x), np.array(y), extrapolate=False)


def _pchip(x, y) -> PchipInterpolator:
    return _pchip_cached(tuple(x.tolist()), tuple(y.tolist()))


def family_fpt(preset: Preset, convention: str = "total") -> FlopsPerToken:
    """The model family's fpt(N), N counted by ``convention``, at every depth 1..MAX_DEPTH."""
    check_convention(convention)
    n, f = [], []
    for depth in range(1, MAX_DEPTH + 1):
        cfg = model_config(depth, preset)
        n.append(param_counts(cfg).by_convention(convention))
        f.append(flops_per_token(cfg))
    return FlopsPerToken.from_points(n, f, f"the {preset.name} family's exact count")
