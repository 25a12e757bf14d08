"""Speed of `miniseries fit`: the isoFLOP fit, the parametric fit under both objectives (variable
projection) and Approach 2's bias, with 1000 bootstrap resamples, on 1000 synthetic runs.

Target: <= 10 s on 2 CPU cores. Run: .venv/bin/python benchmarks/bench_fit.py [--runs 1000]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from miniseries.laws import fit_laws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic import synthetic_runs  # noqa: E402 (the tests' planted-law generator)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=1000, help="total runs (10 budgets)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3, help="report the best of this many")
    args = p.parse_args()
    runs = synthetic_runs(np.logspace(18, 21, 10), per_budget=args.runs // 10, noise=0.003)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        laws = fit_laws(runs, n_bootstrap=args.bootstrap, seed=0)
        times.append(time.perf_counter() - t0)
    iso, par = laws.isoflop, laws.parametric
    print(f"runs={len(runs)} bootstrap={args.bootstrap}")
    print(f"isoFLOP a={iso.n_law.exponent:.4f} {iso.n_law.interval}  parametric a={par.a:.4f}")
    best, median = min(times), float(np.median(times))
    print(f"fit + bootstrap: best {best:.2f} s, median {median:.2f} s (target <= 10 s)")


if __name__ == "__main__":
    main()
