"""Small helpers shared by subcommands: number parsing and range parsing that fail as UserError."""

import argparse
import math

from miniseries.config import PRESET_FIELDS
from miniseries.errors import UserError


def positive_float(text: str) -> float:
    """argparse type for FLOPs budgets and the like: '1e18', '3e12'."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """argparse type for any finite number (exponents, shifts): 'nan' and 'inf' are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _int(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type for counts that must be at least 1 (steps, evals, workers)."""
    return _int(text, 1, "a positive integer")


def nonneg_int(text: str) -> int:
    """argparse type for counts and seeds where 0 is allowed."""
    return _int(text, 0, "an integer >= 0")


def check_device(name: str) -> str:
    """auto | cpu | mps | cuda | cuda:N; anything else is a UserError (torch would traceback)."""
    base, _, index = name.partition(":")
    if name in ("auto", "cpu", "mps", "cuda") or (base == "cuda" and index.isdigit()):
        return name
    raise UserError(f"unknown device {name!r}; choose auto, cpu, cuda, cuda:N or mps")


def float_list(text: str) -> list[float]:
    """'1e12,3e12,1e13' -> [1e12, 3e12, 1e13] (each positive)."""
    return [positive_float(t.strip()) for t in text.split(",") if t.strip()]


def int_range(text: str) -> list[int]:
    """'1-6' -> [1..6]; '2,4,6' -> [2, 4, 6]; '1-6,8' also works."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise argparse.ArgumentTypeError(
                        f"range {part!r} runs backwards; write {hi}-{lo}"
                    )
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not an integer range: {text!r} (e.g. 1-6 or 2,4,6)"
            ) from None
    if not out:
        raise argparse.ArgumentTypeError(f"empty range: {text!r}")
    return out


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def add_preset_args(p: argparse.ArgumentParser) -> None:
    """--preset plus the overrides every stage that builds a model accepts."""
    g = p.add_argument_group("preset (defaults for everything below; see `miniseries plan --help`)")
    g.add_argument(
        "--preset", default="cpu",
        help="cpu (tiny, fp32), gpu (nanochat miniseries v1, bf16; also gpu-v1) or gpu-v2 "
        "(nanochat HEAD 2026: docs/raise-the-line.md)",
    )  # fmt: skip
    g.add_argument("--vocab-size", type=int, help="tokenizer vocabulary (preset default)")
    g.add_argument("--seq-len", type=int, help="tokens per row")
    g.add_argument("--batch-tokens", type=int, help="tokens per optimizer step, all ranks")
    g.add_argument("--aspect-ratio", type=int, help="d_model = aspect_ratio x (depth + offset)")
    g.add_argument("--width-offset", type=int, help="the offset in the width rule above")
    g.add_argument("--head-dim", type=int, help="width of one attention head")
    g.add_argument("--device-batch-size", type=int, help="rows per forward pass per process")
    g.add_argument(
        "--dtype", choices=("float32", "bfloat16"),
        help="matmul dtype under autocast, on GPU and CPU alike (gpu presets: bfloat16)",
    )  # fmt: skip
    g.add_argument("--val-tokens", type=int, help="tokens in the fixed validation set")
    g.add_argument("--threads", type=int, help="torch threads per process on CPU")


def preset_overrides(args: argparse.Namespace) -> dict:
    """The preset fields given on the command line (to store with a run's config)."""
    return {k: getattr(args, k) for k in PRESET_FIELDS if getattr(args, k, None) is not None}


def preset_from_args(args: argparse.Namespace):
    from miniseries.config import get_preset

    preset = get_preset(args.preset)
    overrides = preset_overrides(args)
    for name, value in overrides.items():
        if value < (0 if name == "width_offset" else 1):
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.vocab_size is not None and args.vocab_size < 256 + 1:
        raise UserError(
            f"--vocab-size must be at least 257 (256 bytes + BOS), got {args.vocab_size}"
        )
    preset = preset.with_overrides(**overrides)
    if preset.batch_tokens % preset.seq_len:
        raise UserError(
            f"--batch-tokens {preset.batch_tokens} must be a multiple of seq_len "
            f"{preset.seq_len} (whole rows per step), e.g. {preset.seq_len * 8}"
        )
    return preset


def console():
    """A rich Console that doesn't squeeze tables to 80 columns when output is piped."""
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=160)
