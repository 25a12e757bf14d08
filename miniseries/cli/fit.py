"""`miniseries fit`: scaling laws from a CSV of finished runs, or from a project's isoFLOP runs
(no torch, no GPU). With --project the fit is saved in the store, where `series` and `run` find it.
"""

import argparse
import json
import math

from miniseries.cli.common import float_list, nonneg_int
from miniseries.formatting import fmt_bounds, fmt_count

HELP = """\
Fits both routes to the compute-optimal allocation on the runs in a CSV:
  isoFLOP     per budget a parabola of loss vs log N (vertex N*, D*, L*), then
              N* = k C^a, D* = k' C^b across budgets and the tokens:params ratio D*/N*
  parametric  L(N, D) = E + A/N^alpha + B/D^beta by variable projection, under two objectives,
              both shown: Huber on log loss (Chinchilla/Epoch; --objective huber, the default)
              and squared error on loss (VPNLS; --objective squared). They can disagree on the
              allocation; a note says so when their N* intervals at a --predict budget part.
with bootstrap 90% confidence intervals, and checks that the isoFLOP profiles are nested.
L*(C) is floored: E + k C^-gamma with the chosen objective's E (the pure power law k C^s is
printed beside it, marked by whether forward validation prefers it). Approach 2's own bias is
estimated by running the parabolas on the fitted surface at the runs' own sizes; --predict
prints the bias-corrected isoFLOP allocation next to the raw one. N, D and C convert by the
runs' FLOPs per token (flops / tokens, interpolated in log N), not by 6ND.

CSV columns: params, loss, tokens or flops (the other is 6*N*D), optional budget, depth, name.
params_<convention> (e.g. params_kaplan) is used instead of params when present; under
--convention effective (FLOP-equivalent params) N = flops / (6 tokens). Without a
budget column, runs are grouped by FLOPs rounded to 2 significant figures; the crossing check
bins nearly equal FLOPs instead (a bin spans at most a factor --budget-bin-width, default 1.25)
and judges differences against the profiles' measured noise (see docs/crossing.md).

With --project DIR instead of a CSV: the store's finished isoFLOP runs (loss = val bpb), and the
fit is saved into the store (kind 'isoflop_laws'), where `series` and `run` find it.

  miniseries fit runs.csv --convention total --plots figs/
  miniseries fit chinchilla.csv --drop-worst 5 --json
  miniseries fit --project . --predict 1e14"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="fit scaling laws (isoFLOP + parametric) to a CSV of runs",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="?", help="CSV of runs (see above)")
    p.add_argument("--project", metavar="DIR", help="fit the isoFLOP runs of this project's store")
    p.add_argument(
        "--convention",
        default="total",
        help="which params N counts: total|kaplan|matrices|effective (= FLOPs per token / 6)",
    )
    p.add_argument(
        "--objective",
        default="huber",
        choices=("huber", "squared"),
        help="the parametric fit that floors L* and whose surface Approach 2's bias is measured "
        "on (the other objective is fitted and shown too)",
    )
    p.add_argument(
        "--drop-worst", type=int, default=0, metavar="K", help="drop the K highest-loss runs"
    )
    p.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples")
    p.add_argument("--seed", type=nonneg_int, default=0, help="bootstrap seed")
    p.add_argument("--predict", type=float_list, metavar="C[,C...]", help="budgets to predict at")
    p.add_argument("--plots", metavar="DIR", help="write isoflop.png and optima.png here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument(
        "--budget-bin-width",
        type=float,
        default=None,
        metavar="F",
        help="crossing check: runs without a budget within this factor of FLOPs form one isoFLOP "
        "bin (default 1.25)",
    )
    p.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="with --project: also log the fit (and PROJECT/report/*.png) to this W&B project "
        "(default: $MINISERIES_WANDB; needs pip install 'miniseries[wandb]')",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.config import check_convention
    from miniseries.errors import UserError
    from miniseries.laws import fit_laws
    from miniseries.laws.base import drop_worst, runs_from_csv
    from miniseries.laws.crossing import BIN_WIDTH, check
    from miniseries.study.stored_fits import FIT_KIND, fit_record, runs_from_store

    check_convention(args.convention)
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0 (0 skips intervals), got {args.bootstrap}")
    if bool(args.runs) == bool(args.project):
        raise UserError("give either a CSV of runs or --project DIR (not both)")
    if args.wandb and not args.project:
        raise UserError("--wandb logs a project's fit: use --project DIR instead of a CSV")
    wandb_project = None
    if args.project:
        from miniseries.study import wandb_fit
        from miniseries.train import wandb_log

        wandb_project = wandb_log.project_from(args.wandb)
        if wandb_project:
            wandb_log.require()  # before fitting: a missing package is one line
    width = BIN_WIDTH if args.budget_bin_width is None else args.budget_bin_width
    if not (math.isfinite(width) and width >= 1):
        raise UserError(f"--budget-bin-width must be a factor >= 1, got {args.budget_bin_width}")
    if args.project:
        from miniseries.store.db import open_store

        with open_store(args.project, create=False) as store:
            runs = drop_worst(runs_from_store(store, args.convention), args.drop_worst)
            laws = fit_laws(runs, args.convention, args.bootstrap, args.seed, args.objective)
            record = fit_record(laws, runs, args.bootstrap, args.seed)
            fit_id = store.add_fit(FIT_KIND, args.convention, record)
        if not args.json:
            print(f"saved fit #{fit_id} ({FIT_KIND}) in {store.path}")
    else:
        runs = drop_worst(runs_from_csv(args.runs, args.convention), args.drop_worst)
        laws = fit_laws(runs, args.convention, args.bootstrap, args.seed, args.objective)
    verdict = check(runs=runs, bin_width=width)
    predictions = [p for c in args.predict or [] for p in laws.predict(c)]
    plots = _plots(laws, args.plots) if args.plots else []
    if wandb_project:
        wandb_fit.log_fit(wandb_project, args.project, record, fit_id=fit_id, figures=plots)
    if args.json:
        out = laws.to_dict(tuple(args.predict or ())) | {
            "dropped": args.drop_worst,
            "crossing": verdict.to_dict(),
            "predictions": [p.to_dict() for p in predictions],
            "objective_notes": [n for c in args.predict or [] if (n := laws.objective_note(c))],
            "plots": [str(p) for p in plots],
        }
        print(json.dumps(out, indent=2))
        return 0
    notes = [n for c in args.predict or [] if (n := laws.objective_note(c))]
    _print(laws, verdict, predictions, plots, args.drop_worst, notes)
    return 0


def _plots(laws, folder) -> list:
    from pathlib import Path

    from miniseries.report.plots import plot_isoflop, plot_optima

    folder = Path(folder)
    out = []
    if any(math.isfinite(v.coeffs[0]) for v in laws.isoflop.vertices):
        out.append(plot_isoflop(laws.isoflop, folder / "isoflop.png"))
    if laws.isoflop.n_law:
        out.append(plot_optima(laws.isoflop, folder / "optima.png"))
    return out


def _iv(iv, spec: str = ".3f") -> str:
    return fmt_bounds(iv.lo, iv.hi, spec)


MAX_ROWS = 20  # more budgets than this: show only those with a fitted parabola


def _print(laws, verdict, predictions, plots, dropped, objective_notes=()) -> None:
    from rich.table import Table

    from miniseries.cli.common import console
    from miniseries.laws.base import LEVEL, n_label

    con = console()
    nl = n_label(laws.convention)
    con.print(
        f"{laws.n_runs} runs ({dropped} highest-loss dropped); {nl}; intervals: bootstrap "
        f"{LEVEL:.0%} confidence intervals (CI) of the fitted laws"
    )
    iso = laws.isoflop
    shown = [v for v in iso.vertices if len(iso.vertices) <= MAX_ROWS or v.n_points >= 3]
    t = Table(title=f"isoFLOP vertices ({nl})")
    for col in ("budget C", "runs", "N*", "D*", "D*/N*", "L*", "flags"):
        t.add_column(col, justify="left" if col == "flags" else "right")
    for v in shown:
        ok = math.isfinite(v.n_opt)
        t.add_row(
            f"{v.budget:.3g}",
            str(v.n_points),
            fmt_count(v.n_opt) if ok else "-",
            fmt_count(v.d_opt) if ok else "-",
            f"{v.d_opt / v.n_opt:.3g}" if ok else "-",
            f"{v.loss_opt:.4f}" if ok else "-",
            "; ".join(v.flags) or "ok",
        )
    con.print(t)
    if len(shown) < len(iso.vertices):
        con.print(f"({len(iso.vertices) - len(shown)} budgets with fewer than 3 runs not shown)")
    if iso.n_law:
        t = Table(title=f"power laws across {iso.n_law.n_points} usable budgets ({nl})")
        for col in ("law", "exponent", f"{LEVEL:.0%} CI", "coefficient"):
            t.add_column(col, justify="right")
        for name, law in (("N* = k C^a", iso.n_law), ("D* = k' C^b", iso.d_law)):
            t.add_row(name, f"{law.exponent:.3f}", _iv(law.interval), f"{law.k:.3g}")
        fl = iso.floor_law
        if fl is not None:
            t.add_row(
                f"L* = E + k C^-gamma (E {fl.E:.4f})",
                f"{fl.gamma:.4f}",
                _iv(fl.interval, ".4f"),
                f"{fl.k:.3g}",
            )
        if fl is None or not fl.preferred:
            why = "no floor" if fl is None else "forward validation prefers it"
            t.add_row(
                f"L* = k C^s ({why})",
                f"{iso.loss_law.exponent:.4f}",
                _iv(iso.loss_law.interval, ".4f"),
                f"{iso.loss_law.k:.3g}",
            )
        t.add_row(
            "D*/N* trend C^(b-a)", f"{iso.ratio_trend:.3f}", _iv(iso.ratio_trend_interval), ""
        )
        t.add_row(
            f"D*/N* at C={iso.ratio_budget:.2g}",
            f"{iso.ratio:.3g}",
            _iv(iso.ratio_interval, ".3g"),
            "",
        )
        con.print(t)
    if laws.parametric:
        con.print(_parametric_table(laws, nl))
    if laws.bias is not None:
        b = laws.bias
        con.print(
            f"Approach 2's own bias (parabolas on the {b.objective} surface at these runs' sizes, "
            f"no noise): a {b.a_bias:+.4f}, b {b.b_bias:+.4f}, D*/N* {b.ratio_bias():+.2%} at "
            f"C={b.ratio_budget:.2g}; N* {b.n_bias(b.budgets[-1]):+.2%}, D* "
            f"{b.d_bias(b.budgets[-1]):+.2%} at the largest budget"
        )
    for note in laws.notes:
        con.print(f"note: {note}")
    if predictions:
        t = Table(title=f"predictions at new budgets ({nl}; {LEVEL:.0%} CI of the fitted laws)")
        for col in ("budget C", "method", "N*", "N* CI", "D*", "D*/N*", "loss", "loss CI"):
            t.add_column(col, justify="right")
        for pr in predictions:
            t.add_row(
                f"{pr.budget:.3g}",
                pr.method,
                fmt_count(pr.n_opt.point),
                f"[{fmt_count(pr.n_opt.lo)}–{fmt_count(pr.n_opt.hi)}]" if pr.n_opt.bounded else "-",
                fmt_count(pr.d_opt.point),
                f"{pr.d_opt.point / pr.n_opt.point:.3g}",
                f"{pr.loss.point:.4f}",
                _iv(pr.loss, ".4f"),
            )
        con.print(t)
        for note in objective_notes:
            con.print(f"note: {note}")
    con.print(verdict.summary())
    for path in plots:
        con.print(f"wrote {path}")


def _parametric_table(laws, nl):
    """Both objectives' parametric fits, side by side."""
    from rich.table import Table

    from miniseries.laws.base import LEVEL

    fits = laws.parametric_fits
    title = f"parametric L = E + A/N^alpha + B/D^beta ({nl}, {fits[0].n_runs} runs)"
    t = Table(title=title)
    t.add_column("parameter", justify="right")
    for p in fits:
        used = " (used)" if p is laws.parametric else ""
        t.add_column(f"{p.objective_label}{used}", justify="right")
        t.add_column(f"{LEVEL:.0%} CI", justify="right")
    rows = [
        ("E", "E", ".4f"),
        ("A", "A", ".4g"),
        ("B", "B", ".4g"),
        ("alpha", "alpha", ".4f"),
        ("beta", "beta", ".4f"),
        ("a = beta/(alpha+beta)", "a", ".3f"),
        ("b = alpha/(alpha+beta)", "b", ".3f"),
        (f"D*/N* at C={fits[0].ratio_budget:.2g}", "ratio", ".3g"),
    ]
    for name, key, spec in rows:
        cells = []
        for p in fits:
            value = p.ratio if key == "ratio" else getattr(p, key)
            cells += [format(value, spec), _iv(p.intervals[key], spec)]
        t.add_row(name, *cells)
    return t
