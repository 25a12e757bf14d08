"""The recipe attribution's analysis (docs/recipe-ablation.md): the LR rule fitted on the gold
cells, seed noise pooled by dof, each arm against the base by `compare`'s paired bootstrap under
every convention, vertex losses per budget, and the decision rule. Store rows in, plain dicts out;
no torch. The runs are trained by miniseries/jobs/recipe_ablation.py.
"""

import math
from dataclasses import dataclass

import numpy as np

from miniseries.config import CONVENTIONS
from miniseries.errors import UserError
from miniseries.laws.compare import compare_lines
from miniseries.study.stored_fits import runs_for_fit

Z90 = 1.645  # one-sided 95%: "beyond noise" in the decision rule


@dataclass(frozen=True)
class LRRule:
    """log m* = c0 + c1 log(S / s_ref) + c2 log(N / n_ref): the LR multiplier as a function of
    the horizon S (steps) and the size N (total params), fitted once on the gold cells."""

    c0: float
    c1: float
    c2: float
    s_ref: float
    n_ref: float
    se: tuple[float, float, float]  # standard errors of c0, c1, c2
    resid_sd: float  # of log m* about the rule
    cells: tuple[dict, ...]  # per gold cell: budget, depth, steps, params, best grid m, m*

    def multiplier(self, steps: float, params: float) -> float:
        x = (
            self.c0
            + self.c1 * math.log(steps / self.s_ref)
            + self.c2 * math.log(params / self.n_ref)
        )
        return float(f"{math.exp(x):.3g}")

    def describe(self) -> str:
        return (
            f"m = {math.exp(self.c0):.3g} x (S/{self.s_ref:.0f})^{self.c1:+.3f}"
            f"(±{self.se[1]:.3f}) x (N/{self.n_ref:.3g})^{self.c2:+.3f}(±{self.se[2]:.3f}), "
            f"residual sd of log m {self.resid_sd:.3f}, {len(self.cells)} cells"
        )

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"text": self.describe()}


def best_multiplier(rows: list[dict]) -> tuple[float, float]:
    """(best grid multiplier, m*): m* is the vertex of the parabola in log m through the best
    grid point and its two neighbours, kept between them; at an edge, the edge itself."""
    rs = sorted(rows, key=lambda r: r["lr_mult"])
    x = np.log([r["lr_mult"] for r in rs])
    y = np.array([r["val_bpb"] for r in rs])
    i = int(np.argmin(y))
    if i == 0 or i == len(rs) - 1:
        return rs[i]["lr_mult"], rs[i]["lr_mult"]
    c2, c1, _ = np.polyfit(x[i - 1 : i + 2], y[i - 1 : i + 2], 2)
    v = -c1 / (2 * c2) if c2 > 0 else x[i]
    return rs[i]["lr_mult"], float(math.exp(min(max(v, x[i - 1]), x[i + 1])))


def fit_lr_rule(gold_rows: dict, params_of=None) -> LRRule:
    """Least squares of log m* on log steps and log params over the gold cells."""
    cells = []
    for (c, d), rows in sorted(gold_rows.items()):
        if len(rows) < 3:
            continue
        grid_best, m_star = best_multiplier(rows)
        r0 = rows[0]
        n = float(r0.get("params_total") or params_of(d))
        cells.append(dict(budget=c, depth=d, steps=int(r0["steps"]), params=n,
                          best_grid=grid_best, m_star=m_star))  # fmt: skip
    if len(cells) < 4:
        raise UserError(f"the LR rule needs 4 or more gold cells with 3 LRs each, got {len(cells)}")
    s_ref = 300.0  # the horizon the preset's LRs were tuned at
    n_ref = float(np.exp(np.mean(np.log([c["params"] for c in cells]))))
    X = np.column_stack([
        np.ones(len(cells)),
        np.log([c["steps"] / s_ref for c in cells]),
        np.log([c["params"] / n_ref for c in cells]),
    ])  # fmt: skip
    y = np.log([c["m_star"] for c in cells])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = max(1, len(cells) - 3)
    s2 = float(resid @ resid) / dof
    se = np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X)))
    return LRRule(*map(float, coef), s_ref, n_ref, tuple(map(float, se)), math.sqrt(s2),
                  tuple(cells))  # fmt: skip


def pooled_noise(rows: list[dict]) -> tuple[float, int]:
    """(sd, dof) of val bpb across seeds, pooled over cells by degrees of freedom."""
    by_cell: dict = {}
    for r in rows:
        by_cell.setdefault((r["depth"], r["budget"]), []).append(r["val_bpb"])
    ss = sum(float(np.sum((np.array(v) - np.mean(v)) ** 2)) for v in by_cell.values())
    dof = sum(len(v) - 1 for v in by_cell.values())
    if dof < 1:
        raise UserError("seed noise needs 2 or more seeds at a cell")
    return math.sqrt(ss / dof), dof


def interval_list(iv) -> list[float]:
    """An Interval as [point, lo, hi] (the JSON these studies write)."""
    return [float(iv.point), float(iv.lo), float(iv.hi)]


def vertex_deltas(c) -> dict:
    """{budget: [base L*, arm L*, arm − base]} at the usable budgets both lines of ``c`` share."""
    va, vb = ({v.budget: v.loss_opt for v in f.vertices if v.usable} for f in c.fits)
    return {f"{k:.3g}": [va[k], vb[k], vb[k] - va[k]] for k in va if k in vb}


def compare_by_convention(base_rows, arm_rows, name: str, n_bootstrap: int, conventions):
    """The arm against the base under each convention: ({convention: a, b, their differences
    (B − A, paired bootstrap when the cells match), D*/N*, or the fit's error}, the comparison
    under total params or None)."""
    out, total = {}, None
    for conv in conventions:
        ra, rb = runs_for_fit(base_rows, conv), runs_for_fit(arm_rows, conv)
        try:
            c = compare_lines(ra, rb, conv, n_bootstrap, names=("base", name))
        except UserError as e:
            out[conv] = {"error": str(e)}
            continue
        iv = interval_list
        out[conv] = dict(
            a=iv(c.lines[1].a), b=iv(c.lines[1].b), a_base=iv(c.lines[0].a),
            b_base=iv(c.lines[0].b), a_diff=iv(c.a_diff), b_diff=iv(c.b_diff),
            ratio=iv(c.lines[1].ratio), ratio_base=iv(c.lines[0].ratio),
        )  # fmt: skip
        if conv == "total":
            total = c
    return out, total


def compare_arm(base_rows: list[dict], arm_rows: list[dict], name: str, n_bootstrap: int) -> dict:
    """a, b and their differences under every convention; the multiplier and the vertex losses
    under total params."""
    convs, c = compare_by_convention(base_rows, arm_rows, name, n_bootstrap, CONVENTIONS)
    out = {"conventions": convs}
    if c is not None:
        out["multiplier"] = dict(budget=c.headline.budget, m=interval_list(c.headline.m))
        out["vertices"] = vertex_deltas(c)
    return out


def decide(vertices: dict, sigma: float) -> str:
    """The protocol's rule: adopted (no budget worse beyond noise, one better beyond it),
    rejected (one worse beyond noise), or no evidence."""
    if not vertices:
        return "no evidence (no common usable vertex)"
    t = Z90 * math.sqrt(2) * sigma
    deltas = [d for _, _, d in vertices.values()]
    if max(deltas) > t:
        return "rejected"
    return "adopted" if min(deltas) < -t else "no evidence"


def _gold_line(gold_rows: dict) -> list[dict]:
    return [min(rs, key=lambda r: r["val_bpb"]) for rs in gold_rows.values() if rs]


def _flat(cells: dict) -> list[dict]:
    return [r for rs in cells.values() for r in rs]


def analyse(arm_rows, gold_rows, noise_rows, transfer_rows, rule, n_bootstrap=400, log=print):
    """Everything the results table says, as plain data."""
    sigma, dof = pooled_noise(_flat(noise_rows))
    threshold = Z90 * math.sqrt(2) * sigma
    log(f"seed noise: sd {sigma:.4f} bpb ({dof} dof); beyond noise: |delta| > {threshold:.4f}")
    base = _flat(arm_rows["base"])
    result = dict(noise=dict(sd=sigma, dof=dof, threshold=threshold), rule=rule.to_dict(), arms={})
    for arm, cells in arm_rows.items():
        if arm == "base":
            continue
        r = compare_arm(base, _flat(cells), arm, n_bootstrap)
        r["decision"] = decide(r.get("vertices", {}), sigma)
        result["arms"][arm] = r
        log(f"{arm}: {r['decision']}")
    gold_budgets = {c for c, _ in gold_rows}
    base3 = [r for r in base if r["budget"] in gold_budgets]
    g = compare_arm(base3, _gold_line(gold_rows), "gold", n_bootstrap)
    g["decision"] = decide(g.get("vertices", {}), sigma)
    result["gold"] = g
    for arm, cells in arm_rows.items():  # every arm on gold's budgets, against gold
        if arm == "base":
            continue
        rows = [r for r in _flat(cells) if r["budget"] in gold_budgets]
        result["arms"][arm]["vs_gold"] = compare_arm(_gold_line(gold_rows), rows, arm, 0)
    result["transfer"] = _transfer(transfer_rows, threshold)
    return result


def _transfer(transfer_rows: dict, threshold: float) -> dict:
    """At each checked cell: the rule's loss and its neighbours' (x0.7, x1.4); it transfers when
    no neighbour is better by more than the noise threshold."""
    cells, ok = [], True
    for (c, d), rows in sorted(transfer_rows.items()):
        rs = sorted(rows, key=lambda r: r["lr_mult"])
        if len(rs) < 3:
            continue
        rule_loss = rs[1]["val_bpb"]
        best_gain = rule_loss - min(r["val_bpb"] for r in rs)
        ok &= best_gain <= threshold
        cells.append(dict(budget=c, depth=d, losses={r["lr_mult"]: r["val_bpb"] for r in rs},
                          gain_of_best_neighbour=best_gain))  # fmt: skip
    return dict(cells=cells, transfers=ok and bool(cells))


def _fmt(iv, spec=".3f") -> str:
    p, lo, hi = iv
    if any(map(math.isnan, (lo, hi))):
        return f"{p:{spec}}"
    return f"{p:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def _arm_rows_md(name: str, r: dict) -> list[str]:
    out = []
    for conv, c in r["conventions"].items():
        if "error" in c:
            out.append(f"| {name} | {conv} | — | — | — | — | {c['error']} |")
            continue
        out.append(
            f"| {name} | {conv} | {_fmt(c['a'])} | {_fmt(c['b'])} | {_fmt(c['a_diff'], '+.3f')} "
            f"| {_fmt(c['b_diff'], '+.3f')} | {_fmt(c['ratio'], '.3g')} |"
        )
    return out


def markdown(result: dict) -> str:
    """The results table (docs/recipe-ablation.md's "Results" takes it as it is)."""
    n = result["noise"]
    lines = [
        "# Recipe attribution: results",
        "",
        f"Wall time {result.get('wall_s', 0) / 60:.1f} min. Design (budget: depths): "
        + "; ".join(f"{k}: d{v[0]}-d{v[-1]}" for k, v in result.get("design", {}).items()),
        "",
        f"Seed noise: sd {n['sd']:.4f} bpb ({n['dof']} dof); a vertex difference is beyond noise "
        f"when |Δ| > 1.645 √2 sd = {n['threshold']:.4f}.",
        f"LR rule fitted on gold: {result['rule']['text']}.",
        "",
        "Exponents (90% CIs of the fitted laws; Δ = arm − base by the paired bootstrap; the ratio "
        "is D*/N* at the common budget):",
        "",
        "| arm | convention | a | b | Δa | Δb | D*/N* |",
        "|---|---|---|---|---|---|---|",
    ]
    first = next(iter(result["arms"].values()))["conventions"]
    for conv, c in first.items():
        if "error" not in c:
            lines.append(
                f"| base | {conv} | {_fmt(c['a_base'])} | {_fmt(c['b_base'])} | | | "
                f"{_fmt(c['ratio_base'], '.3g')} |"
            )
    for arm, r in result["arms"].items():
        lines += _arm_rows_md(arm, r)
    lines += ["", "On gold's budgets (reduced design), gold against base there:", ""]
    lines += ["| arm | convention | a | b | Δa | Δb | D*/N* |", "|---|---|---|---|---|---|---|"]
    lines += _arm_rows_md("gold", result["gold"])
    lines += ["", "Vertex loss L* (val bpb) per budget, Δ = arm − base, and the decision:", ""]
    budgets = sorted({b for r in result["arms"].values() for b in r.get("vertices", {})}, key=float)
    lines += ["| arm | " + " | ".join(budgets) + " | multiplier at mid | decision |"]
    lines += ["|---|" + "---|" * len(budgets) + "---|---|"]
    base_v = {}
    for r in result["arms"].values():
        base_v |= {b: v[0] for b, v in r.get("vertices", {}).items()}
    lines.append("| base | " + " | ".join(f"{base_v.get(b, math.nan):.4f}" for b in budgets)
                 + " | | |")  # fmt: skip
    for arm, r in [*result["arms"].items(), ("gold", result["gold"])]:
        v = r.get("vertices", {})
        cells = [f"{v[b][1]:.4f} ({v[b][2]:+.4f})" if b in v else "—" for b in budgets]
        m = r.get("multiplier", {}).get("m")
        lines.append(f"| {arm} | " + " | ".join(cells)
                     + f" | {_fmt(m, '.3f') if m else '—'} | {r['decision']} |")  # fmt: skip
    t = result["transfer"]
    lines += ["", f"LR rule transfer check (cells it was not fitted on): "
              f"{'transfers' if t['transfers'] else 'does NOT transfer'}", ""]  # fmt: skip
    for c in t["cells"]:
        losses = ", ".join(f"x{m:.3g}: {v:.4f}" for m, v in sorted(c["losses"].items()))
        lines.append(f"- d{c['depth']} at {c['budget']:.3g}: {losses}; best neighbour gains "
                     f"{c['gain_of_best_neighbour']:+.4f}")  # fmt: skip
    lines += ["", "Gold cells (best grid multiplier, m* interpolated):", ""]
    for c in result["rule"]["cells"]:
        lines.append(f"- d{c['depth']} at {c['budget']:.3g} ({c['steps']} steps): best x"
                     f"{c['best_grid']:g}, m* {c['m_star']:.3g}")  # fmt: skip
    return "\n".join(lines) + "\n"
