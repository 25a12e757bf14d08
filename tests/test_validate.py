"""`miniseries validate`: rolling-origin forward validation (miniseries/laws/validate.py).

Expected values come from independent routes: the planted law's optimum by a dense grid, the
measured vertex by numpy's own parabola, the forecast count by the hand formula, the interval
score by hand."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import CHINCHILLA, synthetic_runs

from miniseries.cli import main
from miniseries.errors import UserError
from miniseries.laws.base import LEVEL, group_budgets
from miniseries.laws.validate import (
    POWER,
    PRODUCT,
    ROUTES,
    RouteSummary,
    choose_route,
    interval_score,
    pick_origins,
    validate_runs,
)

DATA = Path(__file__).parent / "data"
PARAMETRIC = ("parametric (huber)", "parametric (squared)")


def true_optimum_loss(c: float) -> float:
    """min over N of the planted L(N, C/6N), on a dense log grid (not the library's optimizer)."""
    E, A, B, al, be = (CHINCHILLA[k] for k in ("E", "A", "B", "alpha", "beta"))
    n = np.logspace(6, 13, 400_001)
    return float(np.min(E + A / n**al + B / (c / (6 * n)) ** be))


@pytest.fixture(scope="module")
def planted():
    budgets = np.logspace(18, 21, 7)
    runs = synthetic_runs(budgets, per_budget=9, noise=0.0, seed=0)
    return runs, validate_runs(runs, n_bootstrap=20)


def test_noise_free_planted_surface_parametric_exact_power_law_drifts(planted):
    runs, v = planted
    vertex_loss = {}
    for c, rs in group_budgets(runs):
        x = np.log10([r.params for r in rs])
        c2, c1, c0 = np.polyfit(x, [r.loss for r in rs], 2)
        vertex_loss[c] = c0 - c1 * c1 / (4 * c2)
    for f in v.forecasts:
        assert f.measured_loss == pytest.approx(vertex_loss[f.target], rel=1e-9)
    par = [f for f in v.forecasts if f.route in PARAMETRIC]
    assert par
    for f in par:
        assert f.loss.point == pytest.approx(true_optimum_loss(f.target), rel=1e-5)
        assert abs(f.rel_error) < 1e-3  # < 0.1%: only the parabola's own L* bias is left
    # the pure power law never flattens: from each origin its error grows with the horizon
    power = [f for f in v.forecasts if f.route == POWER]
    for origin in {f.origin for f in power}:
        errs = [
            abs(f.rel_error) for f in sorted(power, key=lambda f: f.target) if f.origin == origin
        ]
        assert all(b > a for a, b in zip(errs, errs[1:])), errs
    far = max(power, key=lambda f: f.decades)
    assert abs(far.rel_error) > 0.03  # 2 decades out it is several percent off
    assert (
        v.summary[POWER].loss_abs_error_pct
        > 10 * v.summary["parametric (huber)"].loss_abs_error_pct
    )


@pytest.mark.parametrize("k", [2, 3])
def test_rolling_origin_forecast_counts(k):
    budgets = np.logspace(17, 19.5, 6)
    runs = synthetic_runs(budgets, per_budget=7, noise=0.003, seed=1)
    v = validate_runs(runs, n_bootstrap=10, min_fit_budgets=k)
    m = 6
    expected = sum(m - j for j in range(k, m))  # origin j fits j budgets, predicts the m - j above
    assert v.budgets == pytest.approx(budgets)
    assert len(v.origins) == m - k
    assert set(v.summary) == set(ROUTES)
    for route, s in v.summary.items():
        assert s.n == expected, route
    json.dumps(v.to_dict())  # plain JSON


def test_interval_score_by_hand():
    alpha = 1 - 0.9
    assert interval_score(1.0, 2.0, 1.5, 0.9) == pytest.approx(1.0)
    assert interval_score(1.0, 2.0, 0.5, 0.9) == pytest.approx(1.0 + (2 / alpha) * 0.5)  # 11
    assert interval_score(1.0, 2.0, 2.25, 0.9) == pytest.approx(1.0 + 20 * 0.25)  # 6
    assert interval_score(2.0, 2.0, 2.0, 0.5) == 0.0
    assert interval_score(1.0, 3.0, 4.0, 0.5) == pytest.approx(2.0 + 4 * 1.0)
    assert math.isnan(interval_score(math.nan, 2.0, 1.0))


def test_choose_route_lowest_score_ties_by_route_order():
    def s(route, score, n_err):
        return RouteSummary(route, 3, 1.0, n_err, 0.9, 3, score)

    summary = {
        PRODUCT: s(PRODUCT, 0.1, math.nan),
        "parametric (squared)": s("parametric (squared)", 0.1, 0.02),
        "parametric (huber)": s("parametric (huber)", 0.2, 0.02),
    }
    assert choose_route(summary, "loss") == "parametric (squared)"  # tie: listed before product
    assert choose_route(summary, "n_opt") == "parametric (huber)"  # tie: listed first
    assert choose_route({PRODUCT: s(PRODUCT, 0.1, math.nan)}, "n_opt") is None
    with pytest.raises(UserError):
        choose_route(summary, "ratio")


def test_origin_cap_keeps_the_last_and_spreads_in_log_budget():
    budgets = list(np.logspace(17, 20, 30))
    ks = pick_origins(budgets, 3, cap=8)
    assert len(ks) == 8 and ks[-1] == 29 and ks[0] == 3
    assert pick_origins(budgets[:6], 3, cap=8) == [3, 4, 5]


def test_too_few_budgets_is_a_user_error():
    runs = synthetic_runs(np.logspace(17, 18, 3), per_budget=7, noise=0.003)
    with pytest.raises(UserError, match="only 3 usable budgets.*min-fit-budgets"):
        validate_runs(runs, min_fit_budgets=3)


def run_cli(argv, capsys):
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_on_a_csv_table_json_plot(tmp_path, capsys):
    csv_path = str(DATA / "chinchilla_scalefit.csv")
    png = tmp_path / "v.png"
    code, out, _ = run_cli(["validate", csv_path, "--bootstrap", "20", "--plot", str(png)], capsys)
    assert code == 0
    for route in ROUTES:
        assert route in out
    assert "prediction interval of the measured vertex, nominal 90%" in out
    assert "best for L*" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run_cli(["validate", csv_path, "--bootstrap", "20", "--json"], capsys)
    d = json.loads(out)
    assert code == 0 and d["level"] == LEVEL
    assert d["best_route"]["loss"] in ROUTES
    assert {f["route"] for f in d["forecasts"]} == set(ROUTES)


def test_cli_too_few_budgets_one_line_nothing_written(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["params", "tokens", "flops", "budget", "loss"])
        for r in synthetic_runs(np.logspace(17, 18, 3), per_budget=7, noise=0.003):
            w.writerow([r.params, r.tokens, r.flops, r.budget, r.loss])
    png = tmp_path / "v.png"
    code, out, err = run_cli(["validate", str(path), "--plot", str(png)], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "min-fit-budgets" in err
    assert not png.exists() and out == ""


def test_validate_does_not_import_torch():
    # tests/test_laws.py::test_fitting_and_plotting_do_not_import_torch covers the other modules
    code = (
        "import sys, miniseries.laws.validate, miniseries.cli.validate, miniseries.report.plots;"
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
