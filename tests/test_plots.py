"""Every plot writes a real PNG of the expected size and returns its path."""

import struct

import numpy as np
import pytest
from synthetic import synthetic_runs

from miniseries.errors import UserError
from miniseries.laws.crossing import Curve
from miniseries.laws.isoflop import fit_isoflop
from miniseries.report.plots import (
    DPI,
    plot_curves,
    plot_isoflop,
    plot_lr_sweep,
    plot_optima,
    plot_series,
)


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def series(with_core=True):
    out = []
    for i in range(4):
        flops = np.logspace(10, 11 + 0.5 * i, 25)
        loss = 1.5 + 30 * flops**-0.1 - 0.05 * i
        out.append(Curve(f"d{i + 1}", tuple(flops), tuple(loss), 0.05 * i if with_core else None))
    return out


@pytest.fixture(scope="module")
def fit():
    runs = synthetic_runs([1e18, 3e18, 1e19], per_budget=7, noise=0.003)
    runs += synthetic_runs([3e19], per_budget=2, noise=0.003)  # one flagged budget
    return fit_isoflop(runs, n_bootstrap=100)


def test_isoflop_and_optima_plots(tmp_path, fit):
    for func, name in ((plot_isoflop, "iso.png"), (plot_optima, "opt.png")):
        path = func(fit, tmp_path / "sub" / name)
        assert path == tmp_path / "sub" / name
        assert png_size(path) == (7 * DPI, int(4.8 * DPI))
        assert path.stat().st_size > 20_000  # drawn, not blank
    assert not list((tmp_path / "sub").glob(".*tmp*"))  # atomic write left no temp file


def test_optima_plot_needs_a_power_law(tmp_path):
    lone = fit_isoflop(synthetic_runs([1e18], per_budget=7), n_bootstrap=10)
    with pytest.raises(UserError, match="2 usable budgets"):
        plot_optima(lone, tmp_path / "x.png")


def test_curve_series_and_lr_plots(tmp_path):
    assert png_size(plot_curves(series(), tmp_path / "curves.png"))[0] == 7 * DPI
    with_core = plot_series(series(), tmp_path / "series.png").stat().st_size
    without = plot_series(series(False), tmp_path / "series2.png").stat().st_size
    assert with_core > without  # the CORE twin axis adds ink
    results = {
        d: [(m, 3.0 - 0.1 * d + (np.log2(m) - 0.2) ** 2 / 10) for m in (0.25, 0.5, 1, 2, 4)]
        for d in (2, 4, 6)
    }
    path = plot_lr_sweep(results, {2: 1.1, 4: 1.0, 6: 0.9}, tmp_path / "lr.png")
    assert path.stat().st_size > 20_000
