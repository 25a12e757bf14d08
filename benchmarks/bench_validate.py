"""Speed of `miniseries validate` (rolling-origin forward validation of every route) with its
default 200 bootstrap resamples per fit: on the (Mis)fitting FineWeb/C4 set (176 runs, 26
budgets) and on 300 synthetic runs (20 budgets x 15 sizes, planted Chinchilla law).

Target: < 30 s each on 2 CPU cores. Run: .venv/bin/python benchmarks/bench_validate.py
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from miniseries.laws.base import runs_from_csv
from miniseries.laws.validate import validate_runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic import synthetic_runs  # noqa: E402 (the tests' planted-law generator)

MISFITTING = "/work/shared/reference/isoflops/misfitting_fineweb_c4.csv"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--csv", default=MISFITTING, help="a real runs CSV to time (skipped if absent)")
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--repeat", type=int, default=2, help="report the best of this many")
    args = p.parse_args()
    sets = {"synthetic 300 runs": synthetic_runs(np.logspace(18, 21, 20), 15, noise=0.003)}
    if Path(args.csv).exists():
        sets = {Path(args.csv).name: runs_from_csv(args.csv)} | sets
    for name, runs in sets.items():
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            v = validate_runs(runs, n_bootstrap=args.bootstrap)
            times.append(time.perf_counter() - t0)
        best, median = min(times), float(np.median(times))
        print(
            f"{name}: {len(runs)} runs, {len(v.budgets)} usable budgets, {len(v.origins)} origins, "
            f"{len(v.forecasts)} forecasts; best {best:.2f} s, median {median:.2f} s "
            "(target < 30 s)"
        )


if __name__ == "__main__":
    main()
