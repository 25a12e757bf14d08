"""Two-sided coverage of the 90% intervals on truths neither route assumes (tests/coverage.py):
an N-D interaction, a broken power law in D, Kaplan's L(N, D). Each count must land in the band
where a true 90% interval lands with probability 99% (quantiles 0.5% and 99.5% of
Binomial(n, 0.9), coverage.band): an interval too wide fails as surely as one too narrow. Every
draw is seeded, so a count is the same on every run. benchmarks/bench_coverage.py measures every
(truth, design) with more families and the interval scores; where a row is known to miss, the
test says why and is marked strict xfail, so that a fix shows up."""

import pytest
from coverage import DESIGNS, band, law_family, multiplier_family, outcome_family, score
from synthetic import TRUTHS

CASES = [(t, d) for t in TRUTHS for d in DESIGNS]
BROKEN_SLOPE = (
    "the broken law's N*(C) bends over the 2.5 decades of this design, and the parabola "
    "vertices' bias changes with the budget: the fitted slope is off by more than the noise"
)


def _hits(fn, truth: str, design: str, n: int) -> dict:
    return {
        k: v["hits"] for k, v in score([fn(TRUTHS[truth], design, s) for s in range(n)]).items()
    }


@pytest.mark.parametrize("truth, design", CASES)
def test_law_cis_cover_two_sided(truth, design, request):
    """a and b against the truth's exponents over the design's budgets; D*/N* against what
    Approach 2 converges to on the design (its bias to the truth: bench_coverage.py and
    laws/approach2_bias.py)."""
    lo, hi = band(150)
    hits = _hits(law_family, truth, design, 150)
    assert lo <= hits["ratio vs Approach 2's limit"] <= hi, hits
    if (truth, design) == ("broken power law in D", "6 budgets x 9"):
        request.applymarker(pytest.mark.xfail(strict=True, reason=BROKEN_SLOPE))
    assert lo <= hits["a"] <= hi and lo <= hits["b"] <= hi, hits


DEMO = "demo: 3 budgets x 5"


@pytest.mark.parametrize("truth", TRUTHS)
def test_prediction_intervals_at_the_demo_design_two_sided(truth):
    """The PI of one new run and of a new budget's vertex at the demo's design (fit on 3 budgets,
    predict 0.35 decades past them), 60 families: inside Binomial(60, 0.9)'s 0.5%/99.5%
    quantiles, 47-59. The other designs: benchmarks/bench_coverage.py (too costly here)."""
    lo, hi = band(60)
    hits = _hits(outcome_family, truth, DEMO, 60)
    assert lo <= hits["run_pi"] <= hi and lo <= hits["vertex_pi"] <= hi, hits


@pytest.mark.parametrize("truth", TRUTHS)
def test_compute_multiplier_ci_two_sided(truth):
    """A planted multiplier 1.3 between two lines on a shared design (4 budgets x 7; paired
    bootstrap by cell), 200 pairs: inside Binomial(200, 0.9)'s quantiles, 168-190."""
    lo, hi = band(200)
    hits = _hits(multiplier_family, truth, "4 budgets x 7", 200)
    assert lo <= hits["m"] <= hi, hits
