"""`miniseries runs`: list the runs in a project's results store (a table, or JSON for scripts)."""

import argparse
import json

from miniseries.store.db import KINDS, STATUSES


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "runs",
        help="list the runs in a project's results store",
        description="List the runs recorded in PROJECT/miniseries.db, ordered by budget and "
        "depth. Filter by kind, study or status; --json prints a JSON array with one flat "
        "object per run (every column; config_json parsed into a nested config; [] when "
        "nothing matches), which pandas.read_json or polars.read_json load as a table.",
    )
    p.add_argument("--project", default=".", help="project directory (default: .)")
    p.add_argument("--kind", choices=KINDS, help="only runs of this kind")
    p.add_argument("--study", help="only runs of this study (e.g. a sweep's name)")
    p.add_argument("--status", choices=STATUSES, help="only runs with this status")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the rows as a JSON array of records, every column (config nested)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from miniseries.store.db import open_store

    with open_store(args.project, create=False) as store:
        rows = store.list_runs(kind=args.kind, study=args.study, status=args.status)
    if args.json:
        for row in rows:
            row["config"] = json.loads(row.pop("config_json") or "null")
        print(json.dumps(rows, indent=2))
        return 0
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} run{'s' if len(rows) != 1 else ''}")
    table.add_column("run_id", no_wrap=True, min_width=12)
    table.add_column("kind", no_wrap=True)
    for name in ("budget", "depth", "params", "tokens", "FLOPs", "val bpb", "CORE", "status"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("wall", justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            r["run_id"],
            r["kind"],
            _sci(r["budget"]),
            _text(r["depth"]),
            _human(r["params_total"]),
            _human(r["tokens"]),
            _sci(r["flops"]),
            "" if r["val_bpb"] is None else f"{r['val_bpb']:.4f}",
            _core(r["core"], r["core_label"]),
            _status(r["status"]),
            _duration(r["wall_s"]),
        )
    console = Console()
    if not console.is_terminal:  # piped or captured: don't squeeze the table into 80 columns
        console = Console(width=max(console.width, 160))
    console.print(table)


def _text(x) -> str:
    return "" if x is None else str(x)


def _sci(x: float | None) -> str:
    return "" if x is None else f"{x:.2e}"


def _human(n: int | None) -> str:
    """12_345_678 -> '12.3M'."""
    if n is None:
        return ""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _core(core: float | None, label: str | None) -> str:
    if core is None:
        return ""
    return f"{core:.4f}" if label in (None, "CORE") else f"{core:.4f} ({label})"


def _status(status: str) -> str:
    color = {"done": "green", "failed": "red", "running": "yellow"}.get(status)
    return f"[{color}]{status}[/{color}]" if color else status


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
