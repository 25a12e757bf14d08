"""The `miniseries` command: one subcommand per pipeline stage.

Each subcommand lives in its own module here with two functions: ``add_parser(subparsers)`` and
``run(args) -> int``. Modules import heavy things (torch) inside ``run`` so that ``plan`` and
``fit`` start fast and work without torch. A UserError anywhere becomes one line on stderr and
exit code 2.
"""

import argparse
import importlib
import sys

from miniseries.errors import UserError

# Subcommand modules, in the order --help lists them (the pipeline's order).
COMMANDS = [
    "plan",
    "data",
    "tokenizer",
    "train",
    "sweep",
    "series",
    "predict",
    "run",
    "noise",
    "lr-sweep",
    "sample",
    "runs",
    "export",
    "fit",
    "compare",
    "validate",
    "core",
    "calibrate",
    "extrapolate",
    "report",
    "demo",
    "ablate",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the problem (and exit code 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="miniseries",
        description="Compute-optimal GPT families whose results are known before training.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `miniseries COMMAND --help` for the options of each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        importlib.import_module(f"miniseries.cli.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except UserError as e:
        print(f"miniseries: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("miniseries: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
