"""Bringing an older results store to the current schema: the old shapes of its JSON, rewritten.

Schema 1 -> 2: intervals were ``[lo, hi]`` lists or ``*_lo``/``*_hi`` keys and predictions came
in three shapes; schema 2 stores laws.base ``Interval`` and ``Prediction`` dicts only (same
values). The store (miniseries/store/db.py) runs these when it opens a schema-1 file. No torch.
"""

PLAN_KEYS = ("depth", "params", "convention", "tokens", "steps", "flops")


def _interval_v2(point, bounds) -> dict | None:
    """(point, [lo, hi]) of schema 1 -> an Interval dict (90% confidence: all schema 1 had)."""
    if point is None:
        return None
    lo, hi = bounds if bounds else (None, None)
    return {"point": point, "lo": lo, "hi": hi, "level": 0.9, "kind": "confidence"}


def prediction_v2(old: dict) -> dict:
    """A schema-1 prediction (held-out: ``n_lo``/``loss_hi`` keys; one-knob: ``*_interval`` lists
    and the plan's fields at top level; preset ratio: no interval) as a Prediction dict."""
    from miniseries.laws.base import n_label  # numpy: not at every CLI start, which opens stores

    if isinstance(old.get("loss"), dict) or "plan" in old:
        return old  # already schema 2

    def iv(key, short):
        pair = old.get(f"{short}_interval") or (old.get(f"{short}_lo"), old.get(f"{short}_hi"))
        return _interval_v2(old.get(key), pair)

    convention = old.get("convention", "total")
    return {
        "budget": old["budget"],
        "n_opt": iv("n_opt", "n"),
        "d_opt": iv("d_opt", "d"),
        "loss": iv("loss", "loss"),
        "method": old.get("method", "isoflop"),
        "convention": convention,
        "n_label": n_label(convention),
        "fit_budgets": old.get("fit_budgets", []),
        "fit_id": old.get("fit_id"),
        "ratio": old.get("ratio"),
        "plan": {k: old[k] for k in PLAN_KEYS if k in old} if "depth" in old else None,
        "fit_runs": [],  # schema 1 did not record them
        "fit_settings": None,
        "outcome": None,  # nor a prediction interval
        "outcome_parts": None,
    }


def fit_v2(old: dict) -> dict:
    """A schema-1 fit record with its [lo, hi] lists as Interval dicts."""
    fit = dict(old)
    iso = fit.get("isoflop")
    if iso and not isinstance(iso.get("ratio_interval"), dict):
        iso = fit["isoflop"] = dict(iso)
        for name in ("n_law", "d_law", "loss_law"):
            if iso.get(name):
                law = iso[name] = dict(iso[name])
                law["interval"] = _interval_v2(law["exponent"], law.get("interval"))
        iso["ratio_interval"] = _interval_v2(iso.get("ratio"), iso.get("ratio_interval"))
        trend = iso.get("ratio_trend")
        iso["ratio_trend_interval"] = _interval_v2(trend, iso.get("ratio_trend_interval"))
    par = fit.get("parametric")
    if par and par.get("intervals") and isinstance(next(iter(par["intervals"].values())), list):
        par = fit["parametric"] = dict(par)
        par["intervals"] = {k: _interval_v2(par.get(k), v) for k, v in par["intervals"].items()}
    return fit
