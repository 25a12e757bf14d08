"""What every scaling-law fit shares: a finished run, the one interval type, the one prediction
type, and the parameter-count convention's label. numpy only, no torch.

``Interval`` is the only shape an uncertainty is ever stored or shown in: a point, its bounds, the
level, and what kind of interval it is — a *confidence* interval says where a fitted law's value
lies; a *prediction* interval says where one new run's outcome will land (wider: it adds what a
single run scatters by). ``Prediction`` is the only shape a prediction is stored in.
"""

import csv
import math
import os
from dataclasses import asdict, dataclass

import numpy as np

from miniseries.config import check_convention
from miniseries.errors import UserError

LEVEL = 0.90  # width of every bootstrap interval
CONFIDENCE = "confidence"  # where a fitted law's value lies
PREDICTION = "prediction"  # where one new run's outcome lies

CONVENTION_NAMES = {
    "total": "total params",
    "kaplan": "non-embedding params",
    "matrices": "matrix params",
    "effective": "FLOP-equivalent params, FLOPs/token / 6",
}


def n_label(convention: str) -> str:
    """'N (total params)': the label every printed parameter count carries."""
    return f"N ({CONVENTION_NAMES[check_convention(convention)]})"


def clean_json(x):
    """JSON-safe: numpy scalars to float, NaN/inf to None, tuples to lists."""
    if isinstance(x, dict):
        return {k: clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _float(v) -> float:
    return math.nan if v is None else float(v)


# ---------------------------------------------------------------------------------------------
# Intervals and predictions


@dataclass(frozen=True)
class Interval:
    """A value with the range [lo, hi] that holds it with probability ``level``.

    ``kind`` says which range: CONFIDENCE (of a fitted law's value) or PREDICTION (of one run's
    outcome). Bounds are NaN when there is nothing to bound it with (too few resamples)."""

    point: float
    lo: float
    hi: float
    level: float = LEVEL
    kind: str = CONFIDENCE

    @classmethod
    def from_samples(
        cls,
        point: float,
        samples,
        level: float = LEVEL,
        kind: str = CONFIDENCE,
        nan_is_unbounded: bool = False,
    ) -> "Interval":
        """Percentile interval of bootstrap ``samples``.

        Resamples that failed (NaN) are dropped — or, with ``nan_is_unbounded``, count as +inf:
        a refit that never reaches a target needs unbounded compute, which must widen the
        interval, not vanish (then the inverted-CDF quantile keeps infinities exact, and no
        samples at all leave lo = hi = point)."""
        s = np.asarray(samples, dtype=float).ravel()
        if nan_is_unbounded:
            s = np.where(np.isnan(s), np.inf, s)
            if s.size == 0:
                return cls(point, point, point, level, kind)
            q = (1 - level) / 2
            lo, hi = np.quantile(s, [q, 1 - q], method="inverted_cdf")
            return cls(point, float(lo), float(hi), level, kind)
        s = s[np.isfinite(s)]
        if s.size < 2:
            return cls(point, math.nan, math.nan, level, kind)
        lo, hi = np.percentile(s, [50 * (1 - level), 50 * (1 + level)])
        return cls(point, float(lo), float(hi), level, kind)

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def label(self) -> str:
        """'90% CI' or '90% PI': how every printed interval names itself."""
        return f"{self.level:.0%} {'PI' if self.kind == PREDICTION else 'CI'}"

    def contains(self, x: float) -> bool:
        return self.bounded and self.lo <= x <= self.hi

    def to_dict(self) -> dict:
        return clean_json(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "Interval":
        return cls(
            _float(d["point"]),
            _float(d.get("lo")),
            _float(d.get("hi")),
            float(d.get("level", LEVEL)),
            d.get("kind", CONFIDENCE),
        )


@dataclass(frozen=True)
class Prediction:
    """What a fit says about one budget, stored before anything is trained there.

    ``n_opt``/``d_opt``/``loss``: compute-optimal params, tokens and the loss there, each with the
    confidence interval of the fitted law (None when the method predicts no such number: a
    preset's fixed ratio predicts no loss). ``outcome``: the prediction interval of what will be
    measured (one run, or a parabola vertex), when that is known. ``method``: isoflop, parametric
    or preset_ratio. ``plan``: the run that will be trained for it (depth, params, tokens, steps,
    flops), when one is. ``alternatives``: the same budget by the other routes and forms (the
    pure power-law L*, the Approach-2-bias-corrected allocation, both parametric objectives).
    """

    budget: float
    n_opt: Interval | None
    d_opt: Interval | None
    loss: Interval | None
    method: str
    convention: str
    fit_budgets: tuple[float, ...] = ()
    fit_id: int | None = None
    ratio: float | None = None  # the tokens:params ratio a preset_ratio prediction trains at
    plan: dict | None = None
    fit_runs: tuple[str, ...] = ()  # the run ids the fit used
    fit_settings: dict | None = None  # bootstrap resamples, seed, level
    outcome: Interval | None = None  # prediction interval of what will be measured
    outcome_parts: dict | None = None  # what the prediction interval is made of (loss units)
    # what other reasonable routes and forms predict for the same budget, stored with it
    alternatives: tuple["Prediction", ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self) | {"n_label": n_label(self.convention)}
        if not self.alternatives:  # records made before there were any read back unchanged
            d.pop("alternatives")
        return clean_json(d)

    @classmethod
    def from_dict(cls, d: dict) -> "Prediction":
        def iv(key):
            return Interval.from_dict(d[key]) if d.get(key) else None

        return cls(
            budget=float(d["budget"]),
            n_opt=iv("n_opt"),
            d_opt=iv("d_opt"),
            loss=iv("loss"),
            method=d["method"],
            convention=d["convention"],
            fit_budgets=tuple(d.get("fit_budgets") or ()),
            fit_id=d.get("fit_id"),
            ratio=d.get("ratio"),
            plan=d.get("plan"),
            fit_runs=tuple(d.get("fit_runs") or ()),
            fit_settings=d.get("fit_settings"),
            outcome=iv("outcome"),
            outcome_parts=d.get("outcome_parts"),
            alternatives=tuple(cls.from_dict(a) for a in d.get("alternatives") or ()),
        )


# ---------------------------------------------------------------------------------------------
# Runs


@dataclass(frozen=True)
class Run:
    """One finished training run. params counts the convention the fit is told about."""

    params: float
    tokens: float
    flops: float
    loss: float
    budget: float | None = None
    depth: int | None = None
    name: str | None = None


def _cell(path, line: int, column: str, text: str | None, positive: bool = True) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(
            f"{path}: line {line}: column {column!r} is not a number: {text!r}"
        ) from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise UserError(
            f"{path}: line {line}: column {column!r} must be a positive finite number, got {text!r}"
        )
    return value


def runs_from_csv(path: str | os.PathLike, convention: str = "total") -> list[Run]:
    """Read runs from a CSV: params, loss, tokens and/or flops, optional budget, depth, name.

    A column ``params_<convention>`` (e.g. params_kaplan) wins over ``params`` when present;
    under ``effective`` without such a column, N = flops / (6 tokens).
    """
    check_convention(convention)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise UserError(f"no such runs file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:  # a folder, no permission, not text
        reason = getattr(e, "strerror", None) or "not UTF-8 text"
        raise UserError(f"cannot read runs file {path} ({reason}); give a CSV file") from None
    if not rows:
        raise UserError(f"{path}: no runs (need a header line and one line per run)")
    columns = {(c or "").strip().lower(): c for c in rows[0]}
    p_col = f"params_{convention}" if f"params_{convention}" in columns else "params"
    missing = [c for c in (p_col, "loss") if c not in columns]
    if not ("tokens" in columns or "flops" in columns):
        missing.append("tokens or flops")
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; need params, loss, and tokens or "
            f"flops (optional: budget, depth, name); found: {', '.join(columns)}"
        )

    def get(row, name):
        text = row.get(columns.get(name, ""), None)
        return None if text is None or not text.strip() else text.strip()

    runs = []
    for line, row in enumerate(rows, start=2):
        n = _cell(path, line, p_col, get(row, p_col))
        loss = _cell(path, line, "loss", get(row, "loss"))
        d_text, c_text = get(row, "tokens"), get(row, "flops")
        if d_text is None and c_text is None:
            raise UserError(f"{path}: line {line}: needs a value in 'tokens' or 'flops'")
        d = _cell(path, line, "tokens", d_text) if d_text is not None else None
        c = _cell(path, line, "flops", c_text) if c_text is not None else 6 * n * d
        d = c / (6 * n) if d is None else d
        if convention == "effective" and p_col == "params":  # N_eff = FLOPs per token / 6
            n = c / (6 * d)
        b_text, depth = get(row, "budget"), get(row, "depth")
        runs.append(
            Run(
                params=n,
                tokens=d,
                flops=c,
                loss=loss,
                budget=None if b_text is None else _cell(path, line, "budget", b_text),
                depth=None if depth is None else int(_cell(path, line, "depth", depth)),
                name=get(row, "name"),
            )
        )
    return runs


def drop_worst(runs: list[Run], k: int) -> list[Run]:
    """Drop the k runs of highest loss (Epoch drops 5 of Chinchilla's 245 as outliers)."""
    if k < 0 or k >= len(runs) - 1:
        raise UserError(f"--drop-worst must be from 0 to {max(0, len(runs) - 2)}, got {k}")
    if k == 0:
        return list(runs)
    keep = np.sort(np.argsort([r.loss for r in runs], kind="stable")[: len(runs) - k])
    return [runs[i] for i in keep]


def group_budgets(runs: list[Run]) -> list[tuple[float, list[Run]]]:
    """Runs per compute budget, ascending. Without a budget field, flops rounded to 2 sig. figs.

    A group's C is its stated budget, else the geometric mean of its runs' FLOPs.
    """
    groups: dict[float, list[Run]] = {}
    for r in runs:
        key = r.budget if r.budget is not None else float(f"{r.flops:.2g}")
        groups.setdefault(key, []).append(r)
    out = []
    for key in sorted(groups):
        rs = groups[key]
        stated = rs[0].budget is not None
        c = key if stated else float(np.exp(np.mean([math.log(r.flops) for r in rs])))
        out.append((c, rs))
    return out
