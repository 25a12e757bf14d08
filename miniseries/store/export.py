"""A store table written out for other tools: CSV for anything, typed Parquet for pandas/polars."""

import csv
import io
import os

from miniseries.errors import UserError
from miniseries.paths import atomic_write_bytes, atomic_write_text
from miniseries.store.db import Store


def export_csv(store: Store, path: str | os.PathLike, table: str = "runs") -> int:
    """Write a table as CSV (header row; NULL as empty), atomically. Returns the row count."""
    columns, rows = store.rows(table)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return len(rows)


def export_parquet(store: Store, path: str | os.PathLike, table: str = "runs") -> int:
    """Write a table as Parquet with typed columns, atomically. Returns the row count.

    Each column's type comes from its declared SQLite type, so an empty table keeps its
    schema: INTEGER as int64, REAL as float64, TEXT as string, NULL as null (NOT NULL columns
    are marked required). JSON columns (``config_json``, ``json``, ``predicted_json``) stay
    JSON text. A value that does not fit its column's type (SQLite lets a hand edit store
    one) is a UserError naming it. The file is built in memory, written to a temp file in
    the same folder and renamed over ``path``: on any error ``path`` is left as it was.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def arrow_type(declared: str):
        """(arrow type or None to infer, value check) by SQLite's column affinity rules."""
        d = declared.upper()
        if "INT" in d:
            return pa.int64(), is_int
        if "CHAR" in d or "CLOB" in d or "TEXT" in d:
            return pa.string(), lambda v: isinstance(v, str)
        if "REAL" in d or "FLOA" in d or "DOUB" in d:
            return pa.float64(), lambda v: is_int(v) or isinstance(v, float)
        return None, lambda v: True  # BLOB, NUMERIC or untyped: let pyarrow infer

    with store.snapshot():
        columns, rows = store.rows(table)
        info = {r["name"]: r for r in store.db.execute(f"PRAGMA table_info({table})")}
    fields, arrays = [], []
    for i, name in enumerate(columns):
        declared = info[name]["type"]
        typ, accepts = arrow_type(declared)
        values = [r[i] for r in rows]
        for row_number, v in enumerate(values, start=1):
            if v is not None and not accepts(v):
                raise UserError(
                    f"cannot export {table} as Parquet: row {row_number} has {v!r} in column "
                    f"{name!r} (declared {declared or 'untyped'}); fix that row, or export "
                    "--csv, which takes any value"
                )
        if typ is not None and typ.equals(pa.float64()):  # ints read from REAL become floats
            values = [None if v is None else float(v) for v in values]
        try:
            array = pa.array(values, type=typ)
        except (pa.ArrowException, OverflowError) as e:
            raise UserError(f"cannot export {table}.{name} as Parquet ({e})") from None
        fields.append(pa.field(name, array.type, nullable=not info[name]["notnull"]))
        arrays.append(array)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return len(rows)
