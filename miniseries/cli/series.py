"""`miniseries series`: the miniseries - each depth trained to ratio x params tokens."""

import argparse

from miniseries.cli.common import int_range, positive_float
from miniseries.cli.sweep import add_exec_args, add_run_args

HELP = """\
Train each depth for ratio x params tokens (params counted by --convention). Its validation
curves should be clean, parallel and never cross; `miniseries fit`/`report` check that.

--ratio defaults to D*/N* of the latest isoFLOP fit in the project's store (`miniseries fit
--project`), saying so, and else to the preset's ratio. Parallel and resumable like `sweep`.

  miniseries series --depths 1-6 --ratio 8 --preset cpu --workers 2
  miniseries series --depths 10-20 --preset gpu --workers 8 --core"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "series",
        help="the miniseries: each depth to ratio x params tokens (parallel, resumable)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--depths", type=int_range, help="e.g. 1-6 (default: the preset's)")
    p.add_argument("--ratio", type=positive_float, help="tokens:params (default: see above)")
    add_run_args(p)
    add_exec_args(p)
    p.set_defaults(run=run)


def latest_fit(project, convention: str | None = None) -> dict | None:
    """The newest isoFLOP fit in a project's store (of that convention, if given), or None."""
    from miniseries.cli.fit import FIT_KIND
    from miniseries.paths import store_path
    from miniseries.store import open_store

    if not store_path(project).exists():
        return None
    with open_store(project, create=False) as store:
        return store.latest_fit(FIT_KIND, convention)


def default_ratio(args) -> tuple[float, str | None, str]:
    """(ratio, convention, where it came from) for --ratio left out."""
    import math

    from miniseries.config import get_preset

    fit = latest_fit(args.project, args.convention)
    if fit is not None:
        ratio = (fit["fit"].get("isoflop") or {}).get("ratio")
        if ratio is not None and math.isfinite(ratio):
            conv = fit["fit"]["convention"]
            return ratio, conv, f"D*/N* of isoFLOP fit #{fit['fit_id']} ({fit['created_at']})"
    preset = get_preset(args.preset)
    conv = args.convention or preset.convention
    return preset.ratio, conv, f"the {preset.name} preset's default (no isoFLOP fit in the store)"


def run(args) -> int:
    from miniseries.cli.sweep import execute_from_args, print_results, show_plan, spec_kwargs
    from miniseries.config import get_preset
    from miniseries.laws import n_label
    from miniseries.sweep import series_specs

    ratio, conv = args.ratio, args.convention
    if ratio is None:
        ratio, conv, source = default_ratio(args)
        print(f"ratio {ratio:.3g} tokens per {n_label(conv)}: {source}")
    kw = spec_kwargs(args) | {"convention": conv}
    depths = args.depths or list(get_preset(args.preset).depths)
    specs = series_specs(depths, ratio, **kw)
    show_plan(specs, f"miniseries at ratio {ratio:.3g}: {len(specs)} runs -> {args.project}")
    rows = execute_from_args(args, specs)
    return 0 if rows is None else print_results(rows)
