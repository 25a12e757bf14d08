"""`miniseries calibrate`: GPT-3's CORE estimated from GPT-2 as nanochat does, with fit quality."""

import argparse
import json

HELP = """\
Fits CORE against the 6 tasks CORE shares with the GPT-3 paper on the four GPT-2 models
(simple: OLS on the mean centered score; ridge: alpha on the 6 scores), then applies both fits to
GPT-3's reported accuracies. The estimate is their mean, as in nanochat's
dev/estimate_gpt3_core.ipynb; nanochat's published numbers are shown beside ours."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="estimate GPT-3's CORE from GPT-2's (fit, R², leave-one-out error)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--alpha", type=float, default=0.01, help="ridge strength (default 0.01)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.errors import UserError
    from miniseries.report.calibrate import calibrate_gpt3

    if not args.alpha > 0:
        raise UserError(f"--alpha must be positive (nanochat uses 0.01), got {args.alpha}")
    cal = calibrate_gpt3(args.alpha)
    if args.json:
        print(json.dumps(cal.to_dict(), indent=2))
        return 0
    _print_tables(cal)
    return 0


def _print_tables(cal) -> None:
    from rich.table import Table

    from miniseries.cli.common import console
    from miniseries.formatting import fmt_count

    s, r = cal.simple, cal.ridge
    fit = Table(
        title="GPT-2 calibration: CORE vs the 6 shared tasks (centered)",
        caption=(
            f"simple: CORE = {s.weights[0]:.4f}·mean6 + {s.intercept:.4f}, R² {s.r2:.4f}, "
            f"LOO RMSE {s.loo_rmse:.4f}\n"
            f"ridge (alpha {cal.alpha:g}, 6 features): intercept {r.intercept:.4f}, R² {r.r2:.4f}, "
            f"LOO RMSE {r.loo_rmse:.4f}\n"
            f"final = (simple + ridge) / 2: LOO RMSE {cal.final_loo_rmse:.4f}"
        ),
        caption_justify="left",
    )
    for c in ("model", "mean6", "CORE", "simple", "ridge"):
        fit.add_column(c, justify="left" if c == "model" else "right")
    for g in cal.gpt2:
        fit.add_row(g["name"], *(f"{g[k]:.4f}" for k in ("mean6", "core", "simple", "ridge")))
    lo, hi = min(g["mean6"] for g in cal.gpt2), max(g["mean6"] for g in cal.gpt2)
    est = Table(
        title="GPT-3 CORE estimates",
        caption=(
            f"± is the final predictor's leave-one-out RMSE ({cal.final_loo_rmse:.3f}) on GPT-2,"
            f" whose mean6 spans {lo:.3f}–{hi:.3f};\nestimates beyond that range are"
            " extrapolations and their true error is larger"
        ),
        caption_justify="left",
    )
    for c in ("model", "params", "mean6", "simple", "ridge", "estimate", "nanochat"):
        est.add_column(c, justify="left" if c == "model" else "right")
    for e in cal.estimates:
        est.add_row(
            e.name,
            fmt_count(e.params),
            f"{e.mean_centered:.4f}",
            f"{e.simple:.4f}",
            f"{e.ridge:.4f}",
            f"{e.final:.4f} ± {cal.final_loo_rmse:.3f}",
            f"{e.nanochat:.3f}",
        )
    out = console()
    out.print(fit)
    out.print(est)
