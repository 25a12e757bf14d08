"""Coverage of miniseries' intervals, measured where the truth is known.

1. Prediction intervals (laws/outcome.py) on planted families: runs drawn from Chinchilla's law
   with multiplicative noise, fitted on the smaller budgets, then one new run (at the family
   size nearest the predicted N*) or a parabola vertex over a window is drawn at a larger budget:
   how often does the nominal 90% PI hold it? The law's 90% CI is scored on the same outcomes.
2. Confidence intervals of the isoFLOP exponents a, b and the ratio D*/N* against the planted
   values, and how many bootstrap resamples the fit dropped (and why).
3. Rolling origin on real data: fit the budgets below each usable budget, predict its measured
   vertex: Chinchilla's Fig. 4 runs (tests/data) and, with --project, a miniseries project's sweep.

Run: .venv/bin/python benchmarks/bench_coverage.py [--families 100] [--project demo]
"""

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from miniseries.laws.base import drop_worst, group_budgets, runs_from_csv
from miniseries.laws.fpt import FlopsPerToken
from miniseries.laws.isoflop import fit_isoflop, fit_vertex
from miniseries.laws.parametric import optimum
from miniseries.study.stored_fits import predict_at, runs_for_fit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from synthetic import CHINCHILLA, synthetic_runs  # noqa: E402 (the tests' planted-law generator)

LAW = tuple(CHINCHILLA[k] for k in ("A", "B", "E", "alpha", "beta"))
TRUE_A = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])
GRID = 10 ** np.arange(6, 12, 0.2)  # a family's sizes, ~1.6x apart (like consecutive depths)
# (name, fitted budgets, held-out budget, sizes per budget, span in decades either side)
DESIGNS = [
    ("demo: 3 budgets x 5", (1e18, 1.5e18, 2.25e18), 5e18, 5, 0.5),
    ("4 budgets x 7", (1e18, 2e18, 4e18, 8e18), 2e19, 7, 0.6),
    ("6 budgets x 9", (1e18, 3e18, 1e19, 3e19, 1e20, 3e20), 1e21, 9, 0.6),
]


def truth(n, c):
    a, b, e, al, be = LAW
    d = c / (6 * n)
    return e + a / n**al + b / d**be


def planted(design, noise, families, n_boot):
    """Coverage of the PI and the CI for one run and for a window's vertex, on ``families``."""
    _, budgets, held, per, span = design
    hits = {k: 0 for k in ("run_pi", "run_ci", "vertex_pi", "vertex_ci")}
    widths = {"run_pi": [], "run_ci": []}
    for seed in range(families):
        runs = synthetic_runs(budgets, per_budget=per, span=span, noise=noise, seed=seed)
        rng = np.random.default_rng(10_000 + seed)
        law = predict_at(runs, held, n_bootstrap=n_boot, seed=seed)
        size = GRID[np.argmin(abs(np.log(GRID / law.n_opt.point)))]
        one = predict_at(runs, held, measured_params=[size], n_bootstrap=n_boot, seed=seed)
        y = truth(size, held) * math.exp(noise * rng.standard_normal())
        hits["run_pi"] += one.outcome.contains(y)
        hits["run_ci"] += one.loss.contains(y)
        widths["run_pi"].append(one.outcome.hi - one.outcome.lo)
        widths["run_ci"].append(one.loss.hi - one.loss.lo)
        sizes = law.n_opt.point * 10 ** np.linspace(-span, span, per)
        ys = [truth(s, held) * math.exp(noise * rng.standard_normal()) for s in sizes]
        c2, c1, c0 = np.polyfit(np.log10(sizes), ys, 2)
        xv = -c1 / (2 * c2)
        vertex = c0 + c1 * xv + c2 * xv * xv
        win = predict_at(runs, held, measured_params=list(sizes), n_bootstrap=n_boot, seed=seed)
        hits["vertex_pi"] += win.outcome.contains(vertex)
        hits["vertex_ci"] += win.loss.contains(vertex)
    return hits, {k: float(np.median(v)) for k, v in widths.items()}


def law_cis(design, noise, families, n_boot):
    """How often the 90% CIs of a, b and the ratio hold the planted values; dropped resamples."""
    _, budgets, _, per, span = design
    hits = {"a": 0, "b": 0, "ratio": 0}
    dropped, three, lines = [], [], []
    for seed in range(families):
        runs = synthetic_runs(budgets, per_budget=per, span=span, noise=noise, seed=seed)
        fit = fit_isoflop(runs, n_bootstrap=n_boot, seed=seed)
        n, d, _ = optimum(LAW, fit.ratio_budget, FlopsPerToken.six_nd())
        hits["a"] += fit.n_law.interval.contains(TRUE_A)
        hits["b"] += fit.d_law.interval.contains(1 - TRUE_A)
        hits["ratio"] += fit.ratio_interval.contains(float(d / n))
        per_budget = [v for v in fit.resamples.values() if isinstance(v, dict)]
        dropped.append(
            np.mean([(p["under_3_sizes"] + p["no_minimum_inside"]) / n_boot for p in per_budget])
        )
        three.append(np.mean([p["exactly_3_sizes"] / n_boot for p in per_budget]))
        lines.append(fit.resamples["lines_dropped"] / n_boot)
    return hits, float(np.mean(dropped)), float(np.mean(three)), float(np.mean(lines))


def rolling_origin(runs, n_boot, label):
    """For every usable budget with 2 usable budgets below it: fit those, predict its vertex (PI
    over its own runs' sizes). Returns rows (budget, predicted PI, measured, inside)."""
    rows = []
    usable = []
    for c, rs in group_budgets(runs):
        if len(rs) >= 3 and fit_vertex(rs, c).usable:
            usable.append((c, rs))
    for i, (c, rs) in enumerate(usable):
        below = [r for cc, rr in usable[:i] for r in rr]
        if i < 2:
            continue
        try:
            pred = predict_at(below, c, measured_params=[r.params for r in rs], n_bootstrap=n_boot)
        except Exception as e:  # a fit that cannot predict is reported, not hidden
            rows.append((label, c, f"no prediction ({e})", "", ""))
            continue
        measured = fit_vertex(rs, c).loss_opt
        iv = pred.outcome
        inside = iv.contains(measured)
        rows.append(
            (label, c, f"{iv.point:.4f} [{iv.lo:.4f}–{iv.hi:.4f}]", f"{measured:.4f}", inside)
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--families", type=int, default=100)
    p.add_argument("--bootstrap", type=int, default=400)
    p.add_argument("--noise", type=float, default=0.003, help="multiplicative loss noise")
    p.add_argument("--project", help="a miniseries project whose isoFLOP sweep to roll over")
    args = p.parse_args()
    t0 = time.time()
    print(f"machine: {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}")
    print(f"\n{args.families} planted families per design, noise {args.noise}, 90% intervals\n")
    print("| design | one run: PI | one run: CI | vertex: PI | vertex: CI | median width PI / CI |")
    print("|---|---:|---:|---:|---:|---:|")
    for design in DESIGNS:
        hits, w = planted(design, args.noise, args.families, args.bootstrap)
        f = {k: f"{v / args.families:.0%}" for k, v in hits.items()}
        print(
            f"| {design[0]} | {f['run_pi']} | {f['run_ci']} | {f['vertex_pi']} | {f['vertex_ci']} "
            f"| {w['run_pi']:.3f} / {w['run_ci']:.3f} |"
        )
    print("\n| design | a in CI | b in CI | ratio in CI | profiles dropped | kept with 3 sizes "
          "| lines dropped |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for design in DESIGNS:
        hits, dropped, three, lines = law_cis(design, args.noise, args.families, args.bootstrap)
        f = {k: f"{v / args.families:.0%}" for k, v in hits.items()}
        print(
            f"| {design[0]} | {f['a']} | {f['b']} | {f['ratio']} | {dropped:.1%} | {three:.1%} "
            f"| {lines:.1%} |"
        )
    rows = rolling_origin(
        drop_worst(runs_from_csv(ROOT / "tests/data/chinchilla_fig4.csv"), 5),
        args.bootstrap,
        "Chinchilla Fig. 4",
    )
    if args.project:
        from miniseries.store.db import open_store

        with open_store(args.project, create=False) as store:
            project_runs = runs_for_fit(store.list_runs(kind="isoflop", status="done"))
        rows += rolling_origin(project_runs, args.bootstrap, f"project {args.project}")
    print("\n| data | budget | predicted vertex [90% PI] | measured | inside |")
    print("|---|---:|---:|---:|:---:|")
    for label, c, pred, meas, inside in rows:
        print(f"| {label} | {c:.3g} | {pred} | {meas} | {inside} |")
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
