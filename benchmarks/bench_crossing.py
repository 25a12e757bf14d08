"""The crossing detector's false-alarm and detection rates, measured on planted-law families.

(1) noise-only families: isoFLOP runs drawn from Chinchilla's law with multiplicative noise (and,
    where budgets are unstated, each run's FLOPs jittered by up to +-10%, as digitised or
    step-rounded runs are), at designs of 3-5 budgets x 5-9 sizes. The law is nested, so every
    flag is a false alarm. Also "tied": 4 independent noisy copies of one profile labelled as 4
    budgets 2x apart - the worst nested case (gap exactly 0), where the family-wise rate should be
    near, and not above, the 5% the Bonferroni bound promises.
(2) planted crossings: the same families with the middle 3 sizes of the middle budget moved to the
    next smaller budget's true loss plus 2x or 3x the noise (sigma = noise x loss), i.e. the
    bigger budget is worse than the smaller one by that much at those sizes.
(3) Chinchilla's Fig. 4 runs (Epoch's digitisation, the 5 highest-loss runs dropped).

Each rate is the fraction of families flagged, with its 95% Clopper-Pearson interval; family s
draws its noise with seed s and its FLOPs jitter with seed 10_000 + s. The old rule (groups by
FLOPs rounded to 2 significant figures, absolute tolerance 0.01, linear interpolation) is run on
the same families for comparison.

Run: .venv/bin/python benchmarks/bench_crossing.py [--families 500]   (~1 min on 2 CPU cores)
"""

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from scipy.stats import beta as beta_dist

from miniseries.laws.base import Run, drop_worst, group_budgets, runs_from_csv
from miniseries.laws.crossing import judge_isoflop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from synthetic import CHINCHILLA, synthetic_runs  # noqa: E402 (the tests' planted-law generator)

CHINCHILLA_CSV = ROOT / "tests" / "data" / "chinchilla_fig4.csv"
MID = 3  # planted: this many middle sizes of one budget


@dataclass(frozen=True)
class Design:
    name: str
    budgets: tuple[float, ...]
    sizes: int
    noise: float  # multiplicative, log-normal sd
    jitter: float = 0.0  # each run's FLOPs x U(1 - jitter, 1 + jitter); budgets then unstated
    span: float = 0.6  # decades either side of the optimum
    tied: bool = False  # copies of one profile, labelled as budgets 2x apart


B3 = (1e18, 3e18, 1e19)
B4 = (1e18, 3e18, 1e19, 3e19)
B5 = (1e18, 3e18, 1e19, 3e19, 1e20)
DESIGNS = [
    Design("3 budgets × 5 sizes, noise 0.01", B3, 5, 0.01),
    Design("4 × 7, noise 0.005", B4, 7, 0.005),
    Design("5 × 9, noise 0.003", B5, 9, 0.003),
    Design("5 × 9, noise 0.01, span ±0.8 dec", B5, 9, 0.01, span=0.8),
    Design("4 × 7, noise 0.005, unstated ±10%", B4, 7, 0.005, jitter=0.1),
    Design("5 × 9, noise 0.003, unstated ±10%", B5, 9, 0.003, jitter=0.1),
    Design("5 × 9, noise 0.01, unstated ±10%", B5, 9, 0.01, jitter=0.1),
    Design("tied: 4 copies × 7, noise 0.005", (1e19,) * 4, 7, 0.005, tied=True),
]


def law(n, d) -> float:
    c = CHINCHILLA
    return c["E"] + c["A"] / n ** c["alpha"] + c["B"] / d ** c["beta"]


def family(design: Design, seed: int) -> list[Run]:
    """One family, runs in budget-major order (design.sizes runs per budget, ascending N)."""
    if design.tied:
        runs = []
        for k, c in enumerate(design.budgets):
            seed_k = 1000 * seed + k
            drawn = synthetic_runs([c], design.sizes, design.span, design.noise, seed=seed_k)
            runs += [Run(r.params, r.tokens, r.flops, r.loss, budget=2.0**k) for r in drawn]
        return runs
    runs = synthetic_runs(design.budgets, design.sizes, design.span, design.noise, seed=seed)
    if not design.jitter:
        return runs
    rng = np.random.default_rng(10_000 + seed)
    out = []
    for r in runs:  # the same noise draw, at the jittered FLOPs' true loss
        c = r.flops * rng.uniform(1 - design.jitter, 1 + design.jitter)
        d = c / (6 * r.params)
        out.append(Run(r.params, d, c, r.loss * law(r.params, d) / law(r.params, r.tokens)))
    return out


def plant(design: Design, runs: list[Run], mult: float) -> list[Run]:
    """The middle MID sizes of the middle budget k made worse than budget k-1's true loss there by
    mult x noise x loss (each keeps its own noise draw)."""
    k = len(design.budgets) // 2
    first = k * design.sizes + (design.sizes - MID) // 2
    out = list(runs)
    for i in range(first, first + MID):
        r = runs[i]
        smaller = law(r.params, design.budgets[k - 1] / (6 * r.params))
        draw = r.loss / law(r.params, r.tokens)
        loss = smaller * draw + mult * design.noise * smaller
        out[i] = Run(r.params, r.tokens, r.flops, loss, budget=r.budget)
    return out


def old_rule_flags(runs: list[Run], tol: float = 0.01) -> int:
    """The detector before issue 17: groups by 2 significant figures of FLOPs, every pair, both
    profiles interpolated linearly on the union of their sizes, absolute tolerance."""
    groups = []
    for _, rs in group_budgets(runs):
        x, inv = np.unique(np.log10([r.params for r in rs]), return_inverse=True)
        groups.append((x, np.bincount(inv, [r.loss for r in rs]) / np.bincount(inv)))
    flags = 0
    for i, (x1, y1) in enumerate(groups):
        for x2, y2 in groups[i + 1 :]:
            lo, hi = max(x1[0], x2[0]), min(x1[-1], x2[-1])
            if hi <= lo:
                continue
            grid = np.unique(np.concatenate([[lo, hi], x1, x2]))
            grid = grid[(grid >= lo) & (grid <= hi)]
            flags += bool(np.max(np.interp(grid, x2, y2) - np.interp(grid, x1, y1)) > tol)
    return flags


def rate(k: int, n: int) -> str:
    """k/n as a percentage with its 95% Clopper-Pearson interval."""
    lo = beta_dist.ppf(0.025, k, n - k + 1) if k else 0.0
    hi = beta_dist.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return f"{100 * k / n:.1f}% [{100 * lo:.1f}–{100 * hi:.1f}]"


def measure(design: Design, families: int) -> dict:
    flagged = {"clean": 0, "2x": 0, "3x": 0, "old": 0}
    sigmas = []
    for s in range(families):
        runs = family(design, s)
        found, rule = judge_isoflop(runs)
        flagged["clean"] += bool(found)
        flagged["old"] += bool(old_rule_flags(runs))
        sigmas.append(rule.sigma)
        if not design.tied:
            flagged["2x"] += bool(judge_isoflop(plant(design, runs, 2.0))[0])
            flagged["3x"] += bool(judge_isoflop(plant(design, runs, 3.0))[0])
    return flagged | {"sigma": float(np.median(sigmas)), "bins": rule.n_bins, "tests": rule.n_tests}


def chinchilla() -> str:
    runs = drop_worst(runs_from_csv(CHINCHILLA_CSV), 5)
    found, rule = judge_isoflop(runs)
    worst = max(found, key=lambda v: v.excess).describe() if found else "none"
    return (
        f"Chinchilla Fig. 4 (Epoch's digitisation, 5 highest-loss dropped, {len(runs)} runs): "
        f"{len(found)} isoFLOP violations (worst: {worst}); closest comparison at "
        f"{rule.closest:.2f} of its tolerance; old rule: {old_rule_flags(runs)} violating pairs.\n"
        f"Rule: {rule.describe()}"
    )


def cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        return names[0]
    except (OSError, IndexError):
        return platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--families", type=int, default=500, help="families per design")
    args = p.parse_args()
    t0 = time.perf_counter()
    n = args.families
    print(
        f"{cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}, {date.today()}; "
        f"{n} families per design, seeds 0..{n - 1}\n"
    )
    print(
        "| design | bins | comparisons | median σ̂ | false alarms | old rule false alarms "
        "| caught, 2× noise | caught, 3× noise |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for design in DESIGNS:
        m = measure(design, n)
        det = ("—", "—") if design.tied else (rate(m["2x"], n), rate(m["3x"], n))
        print(
            f"| {design.name} | {m['bins']} | {m['tests']} | {m['sigma']:.4f} | "
            f"{rate(m['clean'], n)} | {rate(m['old'], n)} | {det[0]} | {det[1]} |"
        )
    print()
    print(chinchilla())
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
