"""`miniseries export`: write a table of a project's results store as CSV."""

import argparse

from miniseries.store import TABLES


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a table of the results store as CSV",
        description="Write one table of PROJECT/miniseries.db (runs, curves, core_tasks, fits "
        "or predictions) as CSV with a header row; empty cells are NULLs. The file is written "
        "atomically.",
    )
    p.add_argument("--project", default=".", help="project directory (default: .)")
    p.add_argument("--csv", required=True, metavar="PATH", help="CSV file to write")
    p.add_argument("--table", choices=TABLES, default="runs", help="which table (default: runs)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from miniseries.errors import UserError
    from miniseries.store import open_store

    with open_store(args.project, create=False) as store:
        try:
            n = store.export_csv(args.csv, table=args.table)
        except OSError as e:
            raise UserError(
                f"cannot write {args.csv} ({e.strerror}); give a file path in a writable folder"
            ) from None
    print(f"wrote {n} {args.table} row{'s' if n != 1 else ''} to {args.csv}")
    return 0
