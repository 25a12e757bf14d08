"""The figures of a study, as PNG files: isoFLOP parabolas, optima vs compute, training curves,
the miniseries, and an LR sweep. Each function writes one PNG (atomically) and returns its path.

matplotlib only, through its object API with the Agg canvas: no pyplot global state, no display
needed, safe in threads and on headless machines.
"""

import io
import math
import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from miniseries.laws.base import n_label
from miniseries.laws.crossing import Curve
from miniseries.laws.isoflop import ScalingFit
from miniseries.paths import atomic_write_bytes

DPI = 120


def sparse_log_ticks(axis) -> None:
    """Minor ticks at 2x and 5x each power of ten only: on short log ranges every minor tick gets
    a label, and 3x/4x labels run into each other."""
    axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))


def _figure(width=7.0, height=4.8):
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _budget_colors(budgets):
    norm = LogNorm(min(budgets), max(budgets) * (1.0001 if len(set(budgets)) == 1 else 1))
    cmap = colormaps["viridis"]
    return norm, cmap, [cmap(norm(c)) for c in budgets]


def plot_isoflop(
    fit: ScalingFit, path: str | os.PathLike, ylabel: str = "loss (nats/token)"
) -> Path:
    """Loss vs N per budget: the runs, the fitted parabola over the sampled sizes, the vertex
    (star; a cross where the vertex is flagged and left out of the power laws)."""
    fig, ax = _figure()
    vs = fit.vertices
    norm, cmap, colors = _budget_colors([v.budget for v in vs])
    for v, color in zip(vs, colors):
        n, loss = np.array(v.points).T
        ax.scatter(n, loss, color=color, s=18, zorder=3)
        if math.isfinite(v.coeffs[0]):
            x = np.linspace(np.log10(n.min()), np.log10(n.max()), 100)
            ax.plot(10**x, np.polyval(v.coeffs, x), color=color, lw=1.3)
        if math.isfinite(v.n_opt) and n.min() <= v.n_opt <= n.max():
            marker, size, edge = ("*", 160, "black") if v.usable else ("x", 60, None)
            ax.scatter(
                [v.n_opt],
                [v.loss_opt],
                marker=marker,
                s=size,
                color=color,
                edgecolors=edge,
                linewidth=0.6 if edge else 1.5,
                zorder=4,
            )
    ax.set_xscale("log")
    sparse_log_ticks(ax.xaxis)
    ax.set_xlabel(n_label(fit.convention))
    ax.set_ylabel(ylabel)
    flagged = sum(not v.usable for v in vs)
    note = f", {flagged} flagged (x)" if flagged else ""
    ax.set_title(f"isoFLOP profiles: {len(vs)} budgets, vertex = star{note}")
    ax.grid(True, which="both", alpha=0.25)
    fig.colorbar(_mappable(norm, cmap), ax=ax, label="compute budget C (FLOPs)")
    return _save(fig, path)


def _mappable(norm, cmap):
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


def _law_band(ax, fit: ScalingFit, key: str, grid, color, alpha: float) -> None:
    """The 90% bootstrap band of one power law of an isoFLOP fit (``key``: n, d or l) over the
    budgets ``grid``; nothing when fewer than 10 resamples survived."""
    s = fit.samples
    ok = np.isfinite(s[f"exp_{key}"])
    if ok.sum() >= 10:
        boot = s[f"logk_{key}"][ok, None] + s[f"exp_{key}"][ok, None] * np.log10(grid)
        band = 10 ** np.percentile(boot, [5, 95], axis=0)
        ax.fill_between(grid, band[0], band[1], color=color, alpha=alpha, lw=0)


def plot_optima(fit: ScalingFit, path: str | os.PathLike) -> Path:
    """N* and D* vs C: the usable vertices, the power laws, and their bootstrap 90% bands."""
    if fit.n_law is None:
        from miniseries.errors import UserError

        raise UserError("no power law to plot: the isoFLOP fit needs 2 usable budgets")
    fig, ax = _figure()
    used = [v for v in fit.vertices if v.usable]
    cs = np.array([v.budget for v in used])
    grid = np.logspace(np.log10(cs.min()) - 0.15, np.log10(cs.max()) + 0.15, 60)
    for key, law, values, color in (
        ("n", fit.n_law, [v.n_opt for v in used], "tab:blue"),
        ("d", fit.d_law, [v.d_opt for v in used], "tab:orange"),
    ):
        label = "N* " + n_label(fit.convention)[2:] if key == "n" else "D* (tokens)"
        iv = law.interval
        ax.scatter(cs, values, color=color, zorder=3)
        ax.plot(
            grid,
            law(grid),
            color=color,
            label=f"{label} = {law.k:.3g}·C^{law.exponent:.3f} ({iv.label}: "
            f"{iv.lo:.3f} to {iv.hi:.3f})",
        )
        _law_band(ax, fit, key, grid, color, alpha=0.2)
    ax.set_xscale("log")
    sparse_log_ticks(ax.xaxis)
    ax.set_yscale("log")
    ax.set_xlabel("compute budget C (FLOPs)")
    ax.set_ylabel("parameters / tokens at the optimum")
    ax.set_title("compute-optimal N* and D* vs compute (bands: bootstrap 90% CI)")
    ratio = f"D*/N* = {fit.ratio:.3g} at C = {fit.ratio_budget:.2g}"
    iv = fit.ratio_interval
    ax.text(
        0.98,
        0.03,
        f"{ratio}\n({iv.label}: {iv.lo:.3g} to {iv.hi:.3g})",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_curves(
    curves: list[Curve], path: str | os.PathLike, ylabel: str = "validation loss (nats/token)"
) -> Path:
    """Every run's evaluation curve against cumulative training FLOPs (log-x)."""
    fig, ax = _figure()
    curves = sorted(curves, key=lambda c: c.total_flops)
    cmap = colormaps["plasma"]
    for i, c in enumerate(curves):
        color = cmap(0.85 * i / max(1, len(curves) - 1))
        ax.plot(c.flops, c.loss, color=color, lw=1.4, label=c.name)
    ax.set_xscale("log")
    sparse_log_ticks(ax.xaxis)
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"training curves of {len(curves)} runs")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper right", fontsize=8, ncol=1 + len(curves) // 12, framealpha=0.9)
    return _save(fig, path)


def plot_series(
    curves: list[Curve], path: str | os.PathLike, ylabel: str = "final validation bpb"
) -> Path:
    """The miniseries: final bpb (left axis) and CORE where given (right axis) vs FLOPs."""
    fig, ax = _figure()
    curves = sorted(curves, key=lambda c: c.total_flops)
    flops = [c.total_flops for c in curves]
    ax.plot(flops, [c.final_loss for c in curves], "o-", color="tab:blue", label=ylabel)
    for c in curves:
        ax.annotate(
            c.name,
            (c.total_flops, c.final_loss),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel(ylabel, color="tab:blue")
    handles = ax.get_lines()
    with_core = [c for c in curves if c.core is not None]
    if with_core:
        ax2 = ax.twinx()
        handles += ax2.plot(
            [c.total_flops for c in with_core],
            [c.core for c in with_core],
            "s--",
            color="tab:red",
            label="CORE (higher is better)",
        )
        ax2.set_ylabel("CORE", color="tab:red")
    sparse_log_ticks(ax.xaxis)
    ax.set_title(f"miniseries: {len(curves)} runs")
    ax.grid(True, which="both", alpha=0.25)
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8)
    return _save(fig, path)


def plot_lr_sweep(
    results: dict[int, list[tuple[float, float]]],
    optima: dict[int, float],
    path: str | os.PathLike,
    ylabel: str = "validation loss (nats/token)",
) -> Path:
    """Loss vs LR multiplier (log-x), one line per depth, fitted optimum marked (a dotted line)."""
    fig, ax = _figure()
    depths = sorted(results)
    cmap = colormaps["viridis"]
    for i, depth in enumerate(depths):
        color = cmap(0.9 * i / max(1, len(depths) - 1))
        lr, loss = np.array(sorted(results[depth])).T
        ax.plot(lr, loss, "o-", color=color, ms=4, label=f"depth {depth}")
        if depth in optima:
            ax.axvline(optima[depth], color=color, ls=":", lw=1.2)
            best = np.interp(np.log(optima[depth]), np.log(lr), loss)
            ax.scatter(
                [optima[depth]],
                [best],
                marker="*",
                s=140,
                color=color,
                edgecolor="black",
                linewidth=0.6,
                zorder=4,
            )
    ax.set_xscale("log")
    grid = sorted({lr for pts in results.values() for lr, _ in pts})
    ax.set_xticks(grid)  # label every multiplier that was tried
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("learning-rate multiplier (x preset LRs)")
    ax.set_ylabel(ylabel)
    ax.set_title("LR sweep: the optimum (star) should not move with depth")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_budget_curves(items: list, path: Path) -> Path:
    """Every isoFLOP run's val bpb vs FLOPs, coloured by its budget (one colour bar, no legend:
    dozens of runs would bury the plot under a legend)."""
    fig, ax = _figure()
    budgets = [b for b, _ in items]
    lo, hi = min(budgets), max(budgets)
    norm = LogNorm(lo, hi * (1.0001 if hi == lo else 1))
    cmap = colormaps["viridis"]
    for b, c in items:
        ax.plot(c.flops, c.loss, color=cmap(norm(b)), lw=1.1, alpha=0.85)
        ax.scatter([c.flops[-1]], [c.loss[-1]], color=cmap(norm(b)), s=10, zorder=3)
    ax.set_xscale("log")
    sparse_log_ticks(ax.xaxis)
    ax.set_xlabel("training compute so far (FLOPs)")
    ax.set_ylabel("validation bpb")
    n_b = len(set(budgets))
    ax.set_title(f"training curves of {len(items)} isoFLOP runs over {n_b} budgets")
    ax.grid(True, which="both", alpha=0.25)
    ys = np.concatenate([np.asarray(c.loss) for _, c in items])
    top = np.percentile(ys, 98) if len(ys) > 10 else ys.max()
    ax.set_ylim(ys.min() - 0.02 * (top - ys.min()), top + 0.05 * (top - ys.min()) + 1e-9)
    fig.colorbar(_mappable(norm, cmap), ax=ax, label="budget C (FLOPs)")
    return _save(fig, path)


def plot_compare(comparison, path: str | os.PathLike) -> Path:
    """Two lines (a ``compare.Comparison``) side by side: L*(C) (left) and N*(C) (right), log-log,
    each line's usable vertices as points, its power law, and its bootstrap 90% band; the
    compared budget range shaded."""
    fig = Figure(figsize=(11.0, 4.6), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    fits = comparison.fits
    used = [[v for v in f.vertices if v.usable] for f in fits]
    cs = np.array([v.budget for vs in used for v in vs])
    grid = np.logspace(np.log10(cs.min()) - 0.15, np.log10(cs.max()) + 0.15, 80)
    panels = (
        ("l", "loss_law", "loss_opt", "optimal loss L*", "L*(C)"),
        ("n", "n_law", "n_opt", f"N* {n_label(comparison.convention)[2:]}", "N*(C)"),
    )
    for ax, (key, law_name, attr, ylabel, title) in zip(axes, panels):
        ax.axvspan(*comparison.budget_range, color="0.92", lw=0, zorder=0)
        for fit, vs, name, color in zip(fits, used, comparison.names, ("tab:blue", "tab:red")):
            law = getattr(fit, law_name)
            ax.scatter([v.budget for v in vs], [getattr(v, attr) for v in vs], color=color, s=22)
            label = f"{name}: {law.k:.3g}·C^{law.exponent:.3f}"
            ax.plot(grid, law(grid), color=color, lw=1.4, label=label)
            _law_band(ax, fit, key, grid, color, alpha=0.18)
        ax.set_xscale("log")
        ax.set_yscale("log")
        sparse_log_ticks(ax.xaxis)
        if key == "l":  # a loss spans well under a decade: label its ticks as plain numbers
            sparse_log_ticks(ax.yaxis)
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.set_xlabel("compute budget C (FLOPs)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title} (bands: bootstrap 90% CI; grey: compared range)", fontsize=9)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(loc="best", fontsize=8, framealpha=0.9)
    h = comparison.headline.m
    fig.suptitle(
        f"{comparison.names[1]} vs {comparison.names[0]}: compute multiplier at "
        f"C={comparison.headline.budget:.3g}: {h.point:.3g} ({h.label}: {h.lo:.3g} to {h.hi:.3g})",
        fontsize=10,
    )
    return _save(fig, path)


def plot_validation(validation, path: str | os.PathLike) -> Path:
    """Rolling-origin validation (a ``laws.validate.Validation``): the relative error of each
    forecast's L* against how many decades past the fitted data it is, one marker per route
    (nudged sideways so that routes at one horizon don't hide each other), the best route's
    prediction interval as error bars, and the zero line."""
    fig, ax = _figure(8.0, 4.8)
    best = validation.best["loss"]
    routes = list(validation.summary)
    markers = "osD^vP"
    width = max((f.decades for f in validation.forecasts), default=1.0)
    for i, route in enumerate(routes):
        fs = [f for f in validation.forecasts if f.route == route]
        x = np.array([f.decades for f in fs]) + (i - (len(routes) - 1) / 2) * 0.008 * width
        y = 100 * np.array([f.rel_error for f in fs])
        color = f"C{i}"
        label = f"{route}{' (best; bars: its PI)' if route == best else ''}"
        if route == best:
            lo = 100 * np.array([f.loss_pi.lo / f.measured_loss - 1 for f in fs])
            hi = 100 * np.array([f.loss_pi.hi / f.measured_loss - 1 for f in fs])
            yerr = np.nan_to_num(np.stack([y - lo, hi - y]).clip(min=0))
            ax.errorbar(x, y, yerr=yerr, fmt="none", ecolor=color, alpha=0.35, lw=0.8)
        ax.scatter(x, y, s=16, marker=markers[i % len(markers)], color=color, label=label)
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_xlabel("decades past the fitted data, log10(C_target / C_origin)")
    ax.set_ylabel("L* error, (predicted - measured) / measured (%)")
    ax.set_title(
        f"rolling-origin forecasts of the measured vertex ({validation.interval_statement})",
        fontsize=9,
    )
    ax.grid(True, alpha=0.25)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    return _save(fig, path)
