"""Coverage of miniseries' 90% intervals where the truth is known, on truths neither route
assumes (an N-D interaction, a broken power law in D, Kaplan's L(N, D); tests/synthetic.py), at
three designs including the demo's (tests/coverage.py holds the harness the tests share).

For each (truth, design): the CIs of a, b and D*/N* (isoFLOP route), the PIs of one new run and
of a new budget's vertex (and the law's CI scored on the same vertex), and the CI of a planted
compute multiplier between two lines on a shared design. Each row: coverage, whether it lands in
the binomial band around 90% (two-sided, 0.5% tails), the target band 85-95%, the median width
and the mean interval score (a proper score: lower is better, so wider is never better).
Real data: `miniseries validate` (docs/validation.md).

Run: .venv/bin/python benchmarks/bench_coverage.py [--families 100] [--only law,pi,m]
"""

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from coverage import (  # noqa: E402 (the tests' harness)
    DESIGNS,
    band,
    law_family,
    multiplier_family,
    outcome_family,
    score,
)
from synthetic import TRUTHS  # noqa: E402

KINDS = {"law": law_family, "pi": outcome_family, "m": multiplier_family}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--families", type=int, default=100)
    p.add_argument("--only", default="law,pi,m", help="which of law, pi, m to measure")
    args = p.parse_args()
    t0 = time.time()
    print(f"machine: {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}")
    lo, hi = band(args.families)
    print(f"{args.families} families per row; binomial band for true 90%: {lo}-{hi} hits\n")
    print("| truth | design | interval | coverage | in band | width | interval score |")
    print("|---|---|---|---:|:---:|---:|---:|")
    for kind in args.only.split(","):
        for tname, truth in TRUTHS.items():
            for design in DESIGNS:
                records = [KINDS[kind](truth, design, seed) for seed in range(args.families)]
                for key, s in score(records).items():
                    ok = "yes" if lo <= s["hits"] <= hi else "no"
                    print(
                        f"| {tname} | {design} | {key} | {s['hits'] / s['n']:.0%} | {ok} "
                        f"| {s['width']:.4g} | {s['interval_score']:.4g} |",
                        flush=True,
                    )
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
