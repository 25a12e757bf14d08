"""Small helpers shared by subcommands: number parsing and range parsing that fail as UserError."""

import argparse
import math

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
                    raise argparse.ArgumentTypeError(f"range {part!r} runs backwards; write {hi}-{lo}")
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer range: {text!r} (e.g. 1-6 or 2,4,6)") from None
    if not out:
        raise argparse.ArgumentTypeError(f"empty range: {text!r}")
    return out


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)
