"""`miniseries run --flops C`: the one knob. Depth and tokens from the latest fitted law (or the
preset's ratio), the prediction printed and stored before training, the outcome beside it."""

import argparse

from miniseries.cli.common import positive_float
from miniseries.cli.dry_run import add_cost_args
from miniseries.cli.sweep import add_exec_args, add_run_args

HELP = """\
Give a FLOPs budget; get the compute-optimal model for it. With an isoFLOP fit in the project's
store (`miniseries fit --project`), the depth is the one whose params are nearest the fitted N*(C)
and the prediction includes this run's expected val bpb with its 90% prediction interval (PI:
where one run of that depth will land: the law's uncertainty, run noise, the cost of the depth
not being exactly N*, both fitted forms), and the fitted law's confidence interval (CI) beside
it. Without a fit, the depth comes from the preset's tokens:params ratio. The prediction is
stored (never changed afterwards) before training and printed beside the outcome after.

  miniseries run --flops 3e13 --preset cpu
  miniseries run --flops 1e19 --preset gpu --core"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="the one knob: train the compute-optimal model for a FLOPs budget",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--flops", type=positive_float, required=True, metavar="C", help="budget")
    add_run_args(p)
    add_exec_args(p)
    add_cost_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.cli.common import preset_from_args
    from miniseries.cli.sweep import execute_from_args, print_results, spec_kwargs
    from miniseries.formatting import fmt_count, fmt_interval
    from miniseries.store.db import open_store
    from miniseries.study.runspec import RunSpec
    from miniseries.study.seed_noise import seed_noise
    from miniseries.study.stored_fits import latest_fit, plan_one_knob
    from miniseries.study.sweep import register_run

    preset = preset_from_args(args)
    fit = latest_fit(args.project, args.convention)
    plan, pred, why = plan_one_knob(
        args.flops, preset, fit, args.convention, seed_noise(args.project)
    )
    print(why)
    loss = ""
    if pred.outcome:
        loss = f", expected val bpb of this run {fmt_interval(pred.outcome, '.4f', label=True)}"
        centre = (pred.outcome_parts or {}).get("centre", "isoflop")
        loss += f" (centred on the {centre} route; isoFLOP law at N*: "
        loss += f"{fmt_interval(pred.loss, '.4f', label=True)})"
    elif pred.loss:
        loss = f", expected val bpb {fmt_interval(pred.loss, '.4f', label=True)}"
    print(
        f"prediction for C = {args.flops:.3g}: depth {plan.depth}, {fmt_count(plan.params())} "
        f"params ({plan.convention}), {fmt_count(plan.tokens)} tokens ({plan.steps} steps, "
        f"ratio {plan.ratio:.3g}){loss}"
    )
    if plan.steps < preset.min_steps:
        print(f"note: only {plan.steps} steps (the preset's min_steps is {preset.min_steps})")
    kw = spec_kwargs(args) | {"convention": plan.convention}
    kw["preset"] = kw["preset"].name  # a RunSpec records its preset by name
    spec = RunSpec(plan.depth, plan.steps, kind="one_knob", budget=args.flops, **kw)
    if args.dry_run:
        from miniseries.cli.dry_run import show_dry_run

        show_dry_run([spec], args, f"one run -> {args.project}", 1, args.nproc * args.nodes)
        return 0
    with open_store(args.project) as store:
        register_run(store, spec, args.project)  # the row, before the prediction that names it
        pid = store.add_prediction(spec.run_id, pred.to_dict())
    rows = execute_from_args(args, [spec])
    code = print_results(rows)
    row = rows[0]
    judged = pred.outcome or pred.loss
    if row["status"] == "done" and judged:
        where = ""
        if judged.bounded:
            where = "inside" if judged.contains(row["val_bpb"]) else "outside"
            where = f", {where} the {judged.label}"
        err = 100 * (row["val_bpb"] / judged.point - 1)
        print(
            f"outcome: val bpb {row['val_bpb']:.4f} vs predicted {judged.point:.4f} "
            f"({err:+.1f}%{where}; prediction #{pid}, stored before the run started)"
        )
    return code
