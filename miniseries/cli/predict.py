"""`miniseries predict --flops C`: store a prediction for a budget before anything there is trained.

Fits the project's finished isoFLOP runs below C and stores, once and for good, what they say
about C: N*, D*, the optimal loss with the law's confidence interval (CI), the depths the rule
will sample there (a window centred on the predicted N*), and the prediction interval (PI) of the
loss that window's parabola vertex will measure. Then sweep C (`miniseries sweep --flops C
--depths ...`) and `miniseries report` judges the first prediction against what was measured,
saying whether it was blind (made before any run at C started). Predicting again adds a new
prediction; the first one never changes.

  miniseries predict --flops 7e11 --project demo
"""

import argparse

from miniseries.cli.common import add_preset_args, nonneg_int, positive_float
from miniseries.config import CONVENTIONS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="store a blind prediction for a budget from the smaller budgets' isoFLOP fit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--flops", type=positive_float, required=True, metavar="C", help="budget")
    p.add_argument("--project", default=".", help="project folder (results store)")
    p.add_argument(
        "--convention",
        choices=CONVENTIONS,
        help="params counted (default: the preset's)",
    )
    p.add_argument("--bootstrap", type=nonneg_int, default=1000, help="bootstrap resamples")
    add_preset_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.cli.common import preset_from_args
    from miniseries.formatting import fmt_count, fmt_interval
    from miniseries.laws.base import Prediction
    from miniseries.study.results import predict_budget

    preset = preset_from_args(args)
    row, started = predict_budget(args.project, args.flops, preset, args.convention, args.bootstrap)
    p = Prediction.from_dict(row["predicted"])
    print(
        f"prediction #{row['prediction_id']} for C = {p.budget:.3g} stored {row['created_at']} "
        f"(fitted on budgets {', '.join(f'{c:.3g}' for c in p.fit_budgets)}; "
        f"{len(p.fit_runs)} runs)"
    )
    print(
        f"  N* {fmt_count(p.n_opt.point)} params ({p.convention}), D* {fmt_count(p.d_opt.point)} "
        f"tokens; optimal loss {fmt_interval(p.loss, '.4f', label=True)}"
    )
    if p.plan:
        depths = "-".join(str(d) for d in (p.plan["depths"][0], p.plan["depths"][-1]))
        print(
            f"  sweep depths {depths} there: their parabola vertex should measure "
            f"{fmt_interval(p.outcome, '.4f', label=True)}"
        )
    for alt in p.alternatives:
        loss = f", L* {fmt_interval(alt.loss, '.4f', label=True)}" if alt.loss else ""
        print(f"  also stored: {alt.method}: N* {fmt_count(alt.n_opt.point)}{loss}")
    if started:
        print(f"  NOT BLIND: runs at {p.budget:.3g} had already started before this prediction")
    return 0
