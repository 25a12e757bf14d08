"""The raise-the-line ledger's analysis (docs/raise-the-line.md): each change's arm against the
base by `compare`'s paired bootstrap: the effective compute multiplier at the compared range's
start, middle and end with its 90% interval, Δa and Δb under total and effective params, the
vertex losses, and a verdict read off the intervals. Store rows in, plain dicts out; no torch.
The runs are trained by miniseries/jobs/raise_line.py.
"""

import math

from miniseries.study.attribution import (
    Z90,
    compare_by_convention,
    decide,
    interval_list,
    vertex_deltas,
)

LEDGER_CONVENTIONS = ("total", "effective")  # effective: a + b = 1, so Δa = -Δb there
# The noise of a vertex loss: the seed noise the recipe attribution measured before this ledger
# existed (docs/recipe-ablation.md: sd 0.0118 bpb, 6 dof). The LR check's threshold and the
# preset decision (attribution.decide) are read against it.
SEED_NOISE = 0.0118

# What nanochat's dev/LOG.md (HEAD 92d63d4, 2026-07-03) reports for each change, in its words.
NANOCHAT_SAYS = {
    "value_embeds": "'helps a lot'; 'wins across all x axes of steps, flops and wall clock'; the "
    "optimal ratio halved 8 -> 4 (2026-01-17)",
    "window": "no effect on loss reported: a wall-clock change (FA3 windows; SDPA falls back)",
    "lambdas": "'solid improvement with essentially no compute overhead' (x0 + resid lambdas)",
    "smear": "'negligible', 'tiny improvement not worth n_embd^2 params' (2026-01-16), yet in HEAD",
    "backout": "'no improvement' (2026-01-16), yet in HEAD",
    "softcap20": "d24: val loss 0.716 -> 0.715, 'minor but solid' (2026-03-02); HEAD's code has 15",
    "schedule": "SFT: warm-down 0.5 best; the pretraining values are not logged with an effect",
    "muon_wd": "'solid improvements, especially the cautious version' (2026-01-10)",
    "unembed_lr": "no logged effect (part of the 2026-01 optimizer sweeps: ~0.002 bpb at d12)",
    "batch": "'matches empirical observations that d26 prefers ~2^20 while d12 prefers ~2^19'",
}


def lr_moved(rows: list[dict], own: float, threshold: float) -> float:
    """The LR check at one cell: rows at the arm's multiplier ``own`` and its x0.7, x1.4
    neighbours. The factor to the best neighbour when it beats ``own`` by more than
    ``threshold`` bpb, else 1."""
    at_own = [r for r in rows if math.isclose(r["lr_mult"], own, rel_tol=1e-6)]
    if not at_own or len(rows) < 2:
        return 1.0
    best = min(rows, key=lambda r: r["val_bpb"])
    if at_own[0]["val_bpb"] - best["val_bpb"] > threshold:
        return float(f"{best['lr_mult'] / own:.3g}")
    return 1.0


def worth(m: list[float]) -> list[float]:
    """A multiplier m (compute the arm needs for base's loss, over base's compute) as what the
    change is worth: 1/m, its interval flipped."""
    p, lo, hi = m
    inv = [1 / x if x > 0 else math.inf for x in (p, hi, lo)]
    return [inv[0], inv[1], inv[2]]


def verdict(worths: list[list[float]]) -> str:
    """Gain: every marked budget's interval above 1; loss: every one below; mixed: some above
    and some below; else within the intervals."""
    above = [lo > 1 for _, lo, _ in worths]
    below = [hi < 1 for _, _, hi in worths]
    if worths and all(above):
        return "gain"
    if worths and all(below):
        return "loss"
    if any(above) and any(below):
        return "mixed (depends on compute)"
    return "no evidence (intervals hold 1)"


def compare_change(base_rows: list[dict], arm_rows: list[dict], name: str, n_bootstrap: int):
    """One ledger line: multipliers and worth at start/middle/end, Δa/Δb, vertices."""
    convs, c = compare_by_convention(base_rows, arm_rows, name, n_bootstrap, LEDGER_CONVENTIONS)
    out = {"conventions": convs, "verdict": "no fit", "decision": "no evidence (no fit)"}
    if c is None:
        return out
    marks = [
        dict(where=m.where, budget=m.budget, m=interval_list(m.m), worth=worth(interval_list(m.m)))
        for m in c.multipliers
        if any(w in m.where for w in ("start", "middle", "end"))
    ]
    out |= dict(marks=marks, verdict=verdict([mk["worth"] for mk in marks]))
    out["vertices"] = vertex_deltas(c)
    out["decision"] = decide(out["vertices"], SEED_NOISE)
    return out


def analyse(arm_rows, check_rows, overrides, tuned, threshold, n_bootstrap=400, log=print):
    """{arm: {(budget, depth): rows}} -> the ledger (plain dicts)."""
    flat = {a: [r for rs in cells.values() for r in rs] for a, cells in arm_rows.items()}
    result = dict(threshold=threshold, arms={}, checks={})
    for a, rows in check_rows.items():
        result["checks"][a] = {f"{r['lr_mult']:.3g}": r["val_bpb"] for r in rows}
    for a in flat:
        if a == "base":
            continue
        log(f"  comparing {a} with base")
        r = compare_change(flat["base"], flat[a], a, n_bootstrap)
        r["overrides"] = overrides[a]
        r["lr_mult"] = tuned.get(a, 1.0)
        r["nanochat"] = NANOCHAT_SAYS.get(a, "")
        result["arms"][a] = r
    return result


def _fmt(iv, spec=".3f") -> str:
    p, lo, hi = iv
    if not all(map(math.isfinite, (lo, hi))):
        return f"{p:{spec}} [{lo:{spec}}, {hi:{spec}}]" if not math.isnan(lo) else f"{p:{spec}}"
    return f"{p:{spec}} [{lo:{spec}}, {hi:{spec}}]"


LEDGER_COLUMNS = ["change", "worth at start", "middle", "end", "Δa", "Δb", "verdict",
                  "preset rule", "LR"]  # fmt: skip
CAUTION = (
    "Measured at 20K–400K parameters: a change worth much here may be worth little at GPT-2 "
    "scale, and the other way round; the ledger measures the changes at this scale, it does not "
    "transfer them."
)


def ledger_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """The ledger's one row per change (docs/raise-the-line.md and the report's section)."""
    rows = []
    for a, r in result["arms"].items():
        marks = {m["where"]: m for m in r.get("marks", [])}
        cells = []
        for where in ("start", "middle", "end"):
            m = next((v for k, v in marks.items() if where in k), None)
            cells.append(f"x{_fmt(m['worth'], '.3f')}" if m else "—")
        t = r["conventions"].get("total", {})
        da = _fmt(t["a_diff"], "+.3f") if "a_diff" in t else "—"
        db = _fmt(t["b_diff"], "+.3f") if "b_diff" in t else "—"
        lr = "x1" if r["lr_mult"] == 1 else f"x{r['lr_mult']:g} (moved)"
        rows.append([a, *cells, da, db, r["verdict"], r["decision"], lr])
    return LEDGER_COLUMNS, rows


def markdown(result: dict) -> str:
    """The ledger table (docs/raise-the-line.md's results take it as it is)."""
    lines = [
        "# Raise the line: the ledger",
        "",
        f"Wall time {result.get('wall_s', 0) / 60:.1f} min. Design (budget: depths): "
        + "; ".join(f"{k}: d{v[0]}-d{v[-1]}" for k, v in result.get("design", {}).items())
        + f". Reference horizon D_ref {result.get('reference_tokens', 0):,} tokens.",
        "",
        "Worth = base's compute over the compute the change needs to reach base's optimal loss "
        "(x1.10 = the change is worth 10% more compute), with the 90% confidence interval of the "
        "fitted laws (paired bootstrap by cell), at the compared range's start, middle and end. "
        "Δa, Δb: arm − base under total params. Verdict: gain when every interval is above 1, "
        "loss when every one is below. Preset rule (docs/recipe-ablation.md's decision rule): "
        f"adopted when no budget's vertex is worse and one is better by more than "
        f"{Z90} √2 x {SEED_NOISE} bpb. {CAUTION}",
        "",
    ]
    columns, rows = ledger_table(result)
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "Exponents (90% CIs) under each convention, and D*/N* at the common budget:", ""]
    lines += ["| arm | convention | a | b | Δa | Δb | D*/N* |", "|---|---|---|---|---|---|---|"]
    for a, r in result["arms"].items():
        for conv, c in r["conventions"].items():
            if "error" in c:
                lines.append(f"| {a} | {conv} | — | — | — | — | {c['error']} |")
                continue
            lines.append(
                f"| {a} | {conv} | {_fmt(c['a'])} | {_fmt(c['b'])} | {_fmt(c['a_diff'], '+.3f')}"
                f" | {_fmt(c['b_diff'], '+.3f')} | {_fmt(c['ratio'], '.3g')} |"
            )
    first = next(iter(result["arms"].values()), {"conventions": {}})["conventions"]
    for conv, c in first.items():
        if "error" not in c:
            lines.append(f"| base | {conv} | {_fmt(c['a_base'])} | {_fmt(c['b_base'])} | | | "
                         f"{_fmt(c['ratio_base'], '.3g')} |")  # fmt: skip
    lines += ["", "Vertex loss L* (val bpb) per budget, arm (Δ = arm − base):", ""]
    budgets = sorted({b for r in result["arms"].values() for b in r.get("vertices", {})}, key=float)
    lines += ["| arm | " + " | ".join(budgets) + " |", "|---|" + "---|" * len(budgets)]
    base_v = {}
    for r in result["arms"].values():
        base_v |= {b: v[0] for b, v in r.get("vertices", {}).items()}
    lines.append("| base | " + " | ".join(f"{base_v.get(b, math.nan):.4f}" for b in budgets) + " |")
    for a, r in result["arms"].items():
        v = r.get("vertices", {})
        cells = [f"{v[b][1]:.4f} ({v[b][2]:+.4f})" if b in v else "—" for b in budgets]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += ["", f"LR check at the middle cell (threshold {result['threshold']:.4f} bpb):", ""]
    for a, losses in result["checks"].items():
        lines.append(f"- {a}: " + ", ".join(f"x{m}: {v:.4f}" for m, v in losses.items()))
    lines += ["", "What nanochat's dev/LOG.md reports for the same change:", ""]
    for a, r in result["arms"].items():
        if r.get("nanochat"):
            lines.append(f"- {a}: {r['nanochat']}")
    return "\n".join(lines) + "\n"
