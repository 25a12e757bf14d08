"""`miniseries extrapolate`: FLOPs, params, tokens, hours, dollars to reach GPT-2/GPT-3's CORE."""

import argparse
import math

from miniseries.cli.common import float_list, nonneg_int, positive_float

HELP = """\
Examples:
  miniseries extrapolate --core-law 3.7555,0.0344 --ratio 8       nanochat v1's published law
  miniseries extrapolate --from-csv series.csv --laws 0.09,0.5,1.8,0.5 --mfu 0.4
The CSV has columns flops, core (and optionally bpb, core_se, mfu). CORE is fitted against FLOPs
as nanochat's 1 - A*C^-k and, when bpb is given, through bpb; forward validation (fit the smaller
budgets, score the larger ones) picks the form, and rows where the forms disagree by more than 2x
show both, with an interval spanning both. Intervals are bootstrap confidence intervals of the law.
Every row says how many decades past the largest run it is ("past data"); rows more than 2 decades
out are marked speculative. If GPT-3 175B's predicted FLOPs miss its real 3.14e23 by more than
10x, the title starts with SANITY FAIL.
If the series' CORE is indistinguishable from chance, the table is a bpb-only extrapolation; it
stops 2 decades past the data unless --far is given.
Hardware default: 8 GPUs, H100 bf16 dense peak 989e12 FLOP/s, MFU 0.5, $3 per GPU-hour."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "extrapolate",
        help="cost (FLOPs, hours, $) to reach each GPT-2 / GPT-3 size's CORE",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--core-law", metavar="A,k", help="use CORE = 1 - A*C^-k as given")
    src.add_argument("--from-csv", metavar="FILE", help="fit a series: columns flops, core[, bpb]")
    p.add_argument("--laws", metavar="kN,a,kD,b", help="N_opt = kN*C^a, D_opt = kD*C^b")
    p.add_argument("--ratio", type=positive_float, help="instead of --laws: D = ratio*N, C = c*N*D")
    p.add_argument(
        "--flops-per-param-token",
        type=positive_float,
        default=6.0,
        metavar="c",
        help="with --ratio: training FLOPs per token / N (default 6, the 6ND rule; the cpu "
        "family's exact count runs 4.7-7.2 with N = total params, and is 6 under --convention "
        "effective)",
    )
    p.add_argument("--convention", default="total", help="params the laws count (label only)")
    p.add_argument("--depth-preset", help="cpu | gpu: also show the family depth nearest N_opt")
    p.add_argument("--gpus", type=int, default=8, help="GPUs (default 8)")
    p.add_argument("--peak-flops", type=positive_float, default=989e12, help="per GPU (989e12)")
    p.add_argument("--mfu", default="0.5", help="model FLOPs utilization, or 'measured' (CSV mfu)")
    p.add_argument("--gpu-hour-usd", type=float, default=3.0, help="price per GPU-hour (3)")
    p.add_argument("--budgets", type=float_list, help="bpb-only table: FLOPs budgets to show")
    p.add_argument("--bpb-targets", type=float_list, default=(), help="bpb-only: bpb to reach")
    p.add_argument(
        "--far",
        action="store_true",
        help="bpb-only: keep rows more than 2 decades past the data (marked speculative)",
    )
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap refits (default 200)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="bootstrap seed")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--csv", action="store_true", help="print CSV rows")
    p.set_defaults(run=run)


def run(args) -> int:
    from miniseries.config import check_convention
    from miniseries.errors import UserError
    from miniseries.laws.flops_laws import CoreFit
    from miniseries.report.calibrate import fit_series
    from miniseries.report.extrapolate import Hardware, extrapolation_table

    check_convention(args.convention)
    if args.n_boot < 0:
        raise UserError(f"--n-boot must be >= 0 (0 skips intervals), got {args.n_boot}")
    series = _read_csv(args.from_csv) if args.from_csv else None
    hardware = Hardware(args.gpus, args.peak_flops, _mfu(args.mfu, series), args.gpu_hour_usd)
    chance = None
    if series is None:
        a, k = _numbers(args.core_law, 2, "--core-law", "A,k (e.g. 3.7555,0.0344)")
        if a <= 0 or k <= 0:  # k <= 0: CORE never rises with compute, so no target is reachable
            raise UserError(
                f"--core-law: A and k must be positive (e.g. 3.7555,0.0344), got {a},{k}"
            )
        core_fit, bpb_fit = CoreFit.from_law(a, k), None
    else:
        fit = fit_series(
            series["flops"],
            series.get("core"),
            series.get("bpb"),
            series.get("core_se"),
            n_boot=args.n_boot,
            seed=args.seed,
        )
        chance, core_fit, bpb_fit = fit.chance, fit.core_fit, fit.bpb_fit
    table = extrapolation_table(
        core_fit,
        bpb_fit,
        _laws(args),
        hardware,
        chance=chance,
        depth_for_params=_depth_fn(args.depth_preset, args.convention),
        budgets=tuple(args.budgets) if args.budgets else None,
        bpb_targets=tuple(args.bpb_targets),
        far=args.far,
    )
    if args.json:
        print(table.to_json())
    elif args.csv:
        print(table.to_csv(), end="")
    else:
        from miniseries.cli.common import console

        console().print(table.to_rich())
    return 0


def _numbers(text: str, n: int, flag: str, form: str) -> list[float]:
    from miniseries.errors import UserError

    try:
        vals = [float(t) for t in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise UserError(f"{flag} takes {n} comma-separated numbers {form}, got {text!r}")
    return vals


def _laws(args):
    from miniseries.errors import UserError
    from miniseries.report.extrapolate import ScalingLaws

    if args.laws and args.ratio:
        raise UserError("give --laws or --ratio, not both")
    if args.laws:
        kn, a, kd, b = _numbers(args.laws, 4, "--laws", "kN,a,kD,b (e.g. 0.09,0.5,1.8,0.5)")
        if kn <= 0 or kd <= 0:
            raise UserError(f"--laws: kN and kD must be positive, got {args.laws!r}")
        return ScalingLaws(kn, a, kd, b, args.convention)
    if args.ratio:
        return ScalingLaws.constant_ratio(args.ratio, args.convention, args.flops_per_param_token)
    return None


def _mfu(text: str, series: dict | None) -> float:
    """A number, or 'measured': the median MFU of the series' runs (CSV column mfu)."""
    import numpy as np

    from miniseries.errors import UserError

    if text == "measured":
        if series is None or "mfu" not in series:
            raise UserError(
                "--mfu measured needs a measured MFU: give --from-csv with an mfu column, "
                "or pass a number such as --mfu 0.4"
            )
        return float(np.median(series["mfu"]))
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--mfu must be a number in (0, 1] or 'measured', got {text!r}") from None
    return value


def _depth_fn(preset_name: str | None, convention: str):
    """The preset family's depth whose params (under ``convention``) are nearest N (log scale)."""
    if preset_name is None:
        return None
    from miniseries.accounting import params
    from miniseries.config import MAX_DEPTH, check_convention, get_preset

    preset, convention = get_preset(preset_name), check_convention(convention)
    sizes = {d: params(preset.model_config(d), convention) for d in range(1, MAX_DEPTH + 1)}

    def depth(n: float):
        if n > sizes[MAX_DEPTH] * 1.5:
            return f">{MAX_DEPTH}"
        return min(sizes, key=lambda d: abs(math.log(sizes[d] / n)))

    return depth


def _read_csv(path: str) -> dict:
    """Columns flops (required), core, bpb, core_se, mfu (optional) as float arrays."""
    import csv

    import numpy as np

    from miniseries.errors import UserError

    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if not rows or "flops" not in rows[0]:
        raise UserError(f"{path}: need a header with a 'flops' column (and core and/or bpb)")
    out = {}
    for col in ("flops", "core", "bpb", "core_se", "mfu"):
        if col in rows[0]:
            try:
                out[col] = np.array([float(r[col]) for r in rows])
            except (TypeError, ValueError):
                raise UserError(f"{path}: column {col!r} has a non-numeric value") from None
    if "core" not in out and "bpb" not in out:
        raise UserError(f"{path}: need a 'core' or 'bpb' column besides 'flops'")
    return out
