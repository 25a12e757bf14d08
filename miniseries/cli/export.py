"""`miniseries export`: write a table of a project's results store as CSV or Parquet."""

import argparse

from miniseries.store.db import TABLES


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a table of the results store as CSV or Parquet",
        description="Write one table of PROJECT/miniseries.db (runs, curves, core_tasks, fits "
        "or predictions) as CSV (--csv: a header row; empty cells are NULLs) or as Parquet "
        "(--parquet: typed columns for pandas/polars; INTEGER columns as int64, REAL as "
        "float64, TEXT as string, NULL as null; JSON columns such as config_json stay JSON "
        "text). Give exactly one of --csv and --parquet. The file is written to a temp file "
        "beside it and renamed into place: on any error an existing file is left as it was.",
    )
    p.add_argument("--project", default=".", help="project directory (default: .)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--csv", metavar="PATH", help="CSV file to write")
    out.add_argument(
        "--parquet",
        metavar="PATH",
        help="Parquet file to write (typed columns; JSON columns stay strings)",
    )
    p.add_argument("--table", choices=TABLES, default="runs", help="which table (default: runs)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from miniseries.errors import UserError
    from miniseries.store.db import open_store
    from miniseries.store.export import export_csv, export_parquet

    parquet = getattr(args, "parquet", None)
    path = parquet if parquet is not None else args.csv
    if (parquet is None) == (args.csv is None):  # the parser checks this; guard direct callers
        raise UserError("give exactly one of --csv PATH and --parquet PATH")
    with open_store(args.project, create=False) as store:
        write = export_parquet if parquet is not None else export_csv
        try:
            n = write(store, path, table=args.table)
        except OSError as e:
            raise UserError(
                f"cannot write {path} ({e.strerror or e}); give a file path in a writable folder"
            ) from None
    print(f"wrote {n} {args.table} row{'s' if n != 1 else ''} to {path}")
    return 0
