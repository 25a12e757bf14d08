"""The results store: one SQLite file per project directory (``PROJECT/miniseries.db``).

Why SQLite: many processes (sweep workers, a report, a user poking with ``sqlite3``) read and write
one study at once, and each write must land whole or not at all. WAL mode lets readers read a
consistent snapshot while one writer writes; ``BEGIN IMMEDIATE`` takes the write lock up front so
two writers never interleave half-writes; ``busy_timeout`` makes the loser wait instead of fail.

A run's identity is a hash of its config (``run_id``), so asking for the same run twice finds the
row that is already there (``ensure_run``) instead of training again.

Tables: ``runs`` (one row per training run), ``curves`` (validation points of a run),
``core_tasks`` (per-task CORE accuracies), ``fits`` (scaling-law fits, newest wins) and
``predictions`` (what was predicted for a run before it ran). No torch here.
"""

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from miniseries.errors import UserError
from miniseries.paths import store_path
from miniseries.store.migrations import fit_v2, prediction_v2

SCHEMA_VERSION = 2  # 2: Interval / Prediction shapes; predictions immutable, one row each
BUSY_TIMEOUT_MS = 30_000
SQLITE_MAGIC = b"SQLite format 3\x00"

KINDS = ("isoflop", "series", "single", "lr_sweep", "one_knob", "noise")
STATUSES = ("pending", "running", "done", "failed")
TABLES = ("runs", "curves", "core_tasks", "fits", "predictions")

RUN_COLUMNS = {
    "run_id": "TEXT PRIMARY KEY",
    "kind": "TEXT NOT NULL",
    "study": "TEXT",
    "budget": "REAL",
    "depth": "INTEGER",
    "preset": "TEXT",
    "d_model": "INTEGER",
    "params_total": "INTEGER",
    "params_kaplan": "INTEGER",
    "params_matrices": "INTEGER",
    "tokens": "INTEGER",
    "flops": "REAL",
    "steps": "INTEGER",
    "ratio": "REAL",
    "lr_mult": "REAL",
    "val_bpb": "REAL",
    "core": "REAL",
    "core_label": "TEXT",
    "wall_s": "REAL",
    "train_s": "REAL",
    "tokens_per_s": "REAL",
    "mfu": "REAL",
    "status": "TEXT NOT NULL",
    "error": "TEXT",
    "run_dir": "TEXT",
    "config_json": "TEXT",
    "created_at": "TEXT NOT NULL",
    "started_at": "TEXT",
    "finished_at": "TEXT",
}
CURVE_COLUMNS = ("step", "tokens", "flops", "val_bpb", "train_loss")
CORE_TASK_COLUMNS = ("task", "accuracy", "centered", "n_examples")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs ({", ".join(f"{k} {t}" for k, t in RUN_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs(run_id), step INTEGER NOT NULL, tokens INTEGER,
    flops REAL, val_bpb REAL, train_loss REAL, PRIMARY KEY (run_id, step));
CREATE TABLE IF NOT EXISTS core_tasks (
    run_id TEXT NOT NULL REFERENCES runs(run_id), task TEXT NOT NULL, accuracy REAL,
    centered REAL, n_examples INTEGER, PRIMARY KEY (run_id, task));
CREATE TABLE IF NOT EXISTS fits (
    fit_id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, kind TEXT NOT NULL,
    convention TEXT, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    prediction_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,
    predicted_json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS predictions_by_run ON predictions (run_id, prediction_id);
CREATE TRIGGER IF NOT EXISTS predictions_never_change BEFORE UPDATE ON predictions
BEGIN SELECT RAISE(ABORT, 'a stored prediction never changes; store a new one'); END;
CREATE TRIGGER IF NOT EXISTS predictions_never_go BEFORE DELETE ON predictions
BEGIN SELECT RAISE(ABORT, 'a stored prediction is never deleted'); END;
CREATE TRIGGER IF NOT EXISTS predictions_never_replaced BEFORE INSERT ON predictions
WHEN NEW.prediction_id IN (SELECT prediction_id FROM predictions)
BEGIN SELECT RAISE(ABORT, 'a stored prediction is never replaced'); END;
"""

# ORDER BY of each table, for listing and export
ORDER = {
    "runs": "budget, depth, created_at, run_id",
    "curves": "run_id, step",
    "core_tasks": "run_id, task",
    "fits": "fit_id",
    "predictions": "prediction_id",
}


def run_id(config: dict) -> str:
    """First 12 hex digits of the sha256 of the config's canonical JSON (key order irrelevant)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def now() -> str:
    """ISO 8601 UTC with microseconds: sorts as text in time order."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _check_sqlite_file(path: Path) -> None:
    """Refuse (without touching it) a file that exists but is not a SQLite database."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise UserError(
            f"{path} is not a miniseries results store (not a SQLite database); "
            "move it away or use another --project directory"
        )


class Store:
    """One open connection to a project's results store. Use as a context manager or close()."""

    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise UserError(
                f"no results store at {self.path}; run `miniseries sweep` or `miniseries train` "
                "first"
            )
        _check_sqlite_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly
        # what we say it is (the sqlite3 module's implicit transactions would split ours).
        self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self._depth = 0  # nesting of transaction(): only the outermost one BEGINs and COMMITs
        try:
            self._setup()
        except sqlite3.OperationalError as e:
            self.db.close()
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            raise UserError(
                f"{self.path} stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s; "
                "wait for it to finish, or stop a hung miniseries process"
            ) from None
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise UserError(
                f"{self.path} is not a usable results store ({e}); "
                "move it away or use another --project directory"
            ) from None
        except BaseException:
            self.db.close()
            raise

    def _setup(self) -> None:
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA foreign_keys = ON")
        has_tables = self.db.execute("SELECT 1 FROM sqlite_master").fetchone() is not None
        if has_tables and self._schema_version() is None:
            raise UserError(
                f"{self.path} is a SQLite database but not a miniseries results store; "
                "move it away or use another --project directory"
            )
        self._set_wal()
        self.db.execute("PRAGMA synchronous = NORMAL")
        with self.transaction():
            version = self._schema_version()
            if version is None:
                self._create_schema()
                version = SCHEMA_VERSION
            if version == 1:
                self._migrate_v1()
                version = 2
        if version > SCHEMA_VERSION:
            raise UserError(
                f"{self.path} was written by a newer miniseries (store schema {version}, this "
                f"version reads {SCHEMA_VERSION}); upgrade miniseries or use another --project"
            )

    def _set_wal(self) -> None:
        """Switch to WAL. Another process may hold a lock while creating the file: retry a while."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                mode = None
            if mode == "wal":
                return
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(f"could not switch {self.path} to WAL mode")
            time.sleep(0.05)

    def _schema_version(self) -> int | None:
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if not has_meta:
            return None
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else None

    def _create_schema(self) -> None:
        # executescript() would COMMIT our transaction first; run the statements one by one.
        for statement in _statements(SCHEMA):
            self.db.execute(statement)
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )

    def _migrate_v1(self) -> None:
        """Schema 1 stored intervals as [lo, hi] lists or ``*_lo``/``*_hi`` keys and predictions
        in three shapes; rewrite them as the one Interval and Prediction shape (same values)."""
        fits = self.db.execute("SELECT fit_id, kind, convention, json FROM fits").fetchall()
        for fit_id, kind, convention, text in fits:
            obj, new_convention = fit_v2(json.loads(text)), convention
            if kind == "lr_transfer":  # schema 1 kept the preset's name in the convention column
                obj, new_convention = obj | {"preset": convention}, None
            self.db.execute(
                "UPDATE fits SET json = ?, convention = ? WHERE fit_id = ?",
                (json.dumps(obj, sort_keys=True), new_convention, fit_id),
            )
        # schema 1 kept one replaceable prediction per run: move them, oldest first, into the
        # table of immutable predictions, each with its own id and its original time
        self.db.execute("ALTER TABLE predictions RENAME TO predictions_v1")
        for statement in _statements(SCHEMA):
            self.db.execute(statement)
        old = "SELECT run_id, predicted_json, created_at FROM predictions_v1 ORDER BY created_at"
        for rid, text, created in self.db.execute(old).fetchall():
            new = json.dumps(prediction_v2(json.loads(text)), sort_keys=True)
            self.db.execute(
                "INSERT INTO predictions (run_id, predicted_json, created_at) VALUES (?, ?, ?)",
                (rid, new, created),
            )
        self.db.execute("DROP TABLE predictions_v1")
        self.db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Group writes: all of them land, or none do. Takes the write lock at once (IMMEDIATE).

        Nested calls join the outer transaction, so the public writers can be combined freely.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException as e:
            self._depth = 0
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            if isinstance(e, sqlite3.OperationalError) and ("full" in str(e) or "I/O" in str(e)):
                raise UserError(
                    f"cannot write {self.path} ({e}: a full disk?); nothing of this write was "
                    "saved and the store is intact: free disk space and rerun"
                ) from None
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator["Store"]:
        """Group reads: they all see the store as of one moment, while writers go on writing.

        Read-only: write through transaction() outside it (inside, a write could fail as busy).
        """
        if self._depth:
            yield self
            return
        self.db.execute("BEGIN DEFERRED")
        self._depth = 1
        try:
            yield self
        finally:
            self._depth = 0
            self.db.execute("COMMIT")

    # -- runs --------------------------------------------------------------------------------------

    def ensure_run(self, run_id: str, **fields) -> tuple[dict, bool]:
        """The run's row, inserting it as 'pending' if absent. Never modifies an existing row.

        Returns (row, created). ``config_json`` may be given as a dict; it is stored as JSON.
        """
        fields = _check_run_fields(fields)
        fields.setdefault("status", "pending")
        fields["run_id"] = run_id
        fields["created_at"] = now()
        if "kind" not in fields:
            raise ValueError("ensure_run needs kind= (one of " + ", ".join(KINDS) + ")")
        names = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self.transaction():
            cur = self.db.execute(
                f"INSERT OR IGNORE INTO runs ({names}) VALUES ({marks})", list(fields.values())
            )
            created = cur.rowcount == 1
            row = self.get_run(run_id)
        return row, created

    def update_run(self, run_id: str, **fields) -> None:
        """Set some columns of an existing run. Moving to 'running' stamps started_at the first
        time only (a resumed run started when its first attempt did: what a blind prediction is
        judged against), and to 'done' or 'failed' stamps finished_at, unless given."""
        fields = _check_run_fields(fields)
        if "run_id" in fields or "created_at" in fields:
            raise ValueError("run_id and created_at are fixed when the run is created")
        status = fields.get("status")
        first_start = status == "running" and "started_at" not in fields
        if first_start:
            fields["started_at"] = now()
        elif status in ("done", "failed"):
            fields.setdefault("finished_at", now())
        if not fields:
            return
        sets = ", ".join(
            "started_at = COALESCE(started_at, ?)"
            if k == "started_at" and first_start
            else f"{k} = ?"
            for k in fields
        )
        with self.transaction():
            cur = self.db.execute(
                f"UPDATE runs SET {sets} WHERE run_id = ?", [*fields.values(), run_id]
            )
            if cur.rowcount != 1:
                raise ValueError(f"no run {run_id!r} in {self.path}")

    def get_run(self, run_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return dict(row) if row else None

    def list_runs(
        self, kind: str | None = None, study: str | None = None, status: str | None = None
    ) -> list[dict]:
        """Runs matching every filter given, ordered by budget, depth, then creation time."""
        where, args = [], []
        for name, value in (("kind", kind), ("study", study), ("status", status)):
            if value is not None:
                where.append(f"{name} = ?")
                args.append(value)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {ORDER['runs']}"
        return [dict(r) for r in self.db.execute(sql, args)]

    # -- curves and CORE tasks ---------------------------------------------------------------------

    def add_curve(self, run_id: str, rows: list[dict]) -> None:
        """Validation points of a run; rewriting a step replaces it (resuming is idempotent)."""
        self._insert_rows("curves", CURVE_COLUMNS, run_id, rows)

    def curve(self, run_id: str) -> list[dict]:
        sql = "SELECT * FROM curves WHERE run_id = ? ORDER BY step"
        return [dict(r) for r in self.db.execute(sql, (run_id,))]

    def add_core_tasks(self, run_id: str, rows: list[dict]) -> None:
        self._insert_rows("core_tasks", CORE_TASK_COLUMNS, run_id, rows)

    def core_tasks(self, run_id: str) -> list[dict]:
        sql = "SELECT * FROM core_tasks WHERE run_id = ? ORDER BY task"
        return [dict(r) for r in self.db.execute(sql, (run_id,))]

    def _insert_rows(self, table: str, columns: tuple, run_id: str, rows: list[dict]) -> None:
        for row in rows:
            unknown = set(row) - set(columns)
            if unknown:
                raise ValueError(f"unknown {table} columns {sorted(unknown)}; known: {columns}")
        names = ", ".join(("run_id", *columns))
        marks = ", ".join("?" for _ in range(len(columns) + 1))
        values = [[run_id, *(row.get(c) for c in columns)] for row in rows]
        with self.transaction():
            sql = f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})"
            self.db.executemany(sql, values)

    # -- fits and predictions ----------------------------------------------------------------------

    def add_fit(self, kind: str, convention: str | None, obj: dict) -> int:
        """Record a fit; returns its fit_id. Older fits stay (the newest is the one used)."""
        text = json.dumps(obj, sort_keys=True)
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO fits (created_at, kind, convention, json) VALUES (?, ?, ?, ?)",
                (now(), kind, convention, text),
            )
        return int(cur.lastrowid)

    def latest_fit(self, kind: str, convention: str | None = None) -> dict | None:
        """The newest fit of a kind (and convention, if given): its row, ``fit`` = the object."""
        sql, args = "SELECT * FROM fits WHERE kind = ?", [kind]
        if convention is not None:
            sql += " AND convention = ?"
            args.append(convention)
        row = self.db.execute(sql + " ORDER BY fit_id DESC LIMIT 1", args).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["fit"] = json.loads(out.pop("json"))
        return out

    def add_prediction(self, run_id: str, obj: dict) -> int:
        """Record what is predicted for a run (or a budget, ``budget:C``) before it runs; returns
        the prediction's id. A stored prediction never changes and is never deleted (triggers
        refuse both): predicting again adds a new row, and the first one stays what it was."""
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO predictions (run_id, predicted_json, created_at) VALUES (?, ?, ?)",
                (run_id, json.dumps(obj, sort_keys=True), now()),
            )
        return int(cur.lastrowid)

    def predictions(self, run_id: str | None = None) -> list[dict]:
        """Predictions (of one run, if given), oldest first, each as {prediction_id, run_id,
        predicted, created_at}."""
        sql, args = "SELECT * FROM predictions", []
        if run_id is not None:
            sql, args = sql + " WHERE run_id = ?", [run_id]
        rows = self.db.execute(f"{sql} ORDER BY {ORDER['predictions']}", args)
        return [
            {
                "prediction_id": r["prediction_id"],
                "run_id": r["run_id"],
                "predicted": json.loads(r["predicted_json"]),
                "created_at": r["created_at"],
            }
            for r in rows
        ]

    def first_prediction(self, run_id: str) -> dict | None:
        """The earliest prediction for a run: the one made blind, whatever was added later."""
        found = self.predictions(run_id)
        return found[0] if found else None

    # -- export ------------------------------------------------------------------------------------

    def rows(self, table: str) -> tuple[list[str], list[tuple]]:
        """(column names, rows) of a whole table, in the listing order."""
        if table not in TABLES:
            raise UserError(f"unknown table {table!r}; choose one of: {', '.join(TABLES)}")
        cur = self.db.execute(f"SELECT * FROM {table} ORDER BY {ORDER[table]}")
        return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]


def _statements(script: str) -> list[str]:
    """The SQL statements of a script, a trigger's BEGIN ... END kept whole."""
    out, current = [], ""
    for part in script.split(";"):
        current += part + ";"
        done = "BEGIN" not in current or current.rstrip(" \n;").endswith("END")
        if current.strip(" \n;") and done:
            out.append(current.strip())
            current = ""
    return out


def _check_run_fields(fields: dict) -> dict:
    """Column names must exist and status/kind must be valid: a mistake here is a bug, not input."""
    fields = dict(fields)
    unknown = set(fields) - set(RUN_COLUMNS)
    if unknown:
        raise ValueError(f"unknown runs columns {sorted(unknown)}; known: {list(RUN_COLUMNS)}")
    if "status" in fields and fields["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {fields['status']!r}")
    if "kind" in fields and fields["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {fields['kind']!r}")
    if "config_json" in fields and not isinstance(fields["config_json"], str | None):
        fields["config_json"] = json.dumps(fields["config_json"], sort_keys=True)
    return fields


def open_store(project: str | os.PathLike, create: bool = True) -> Store:
    """The store of a project directory (``PROJECT/miniseries.db``)."""
    return Store(store_path(project), create=create)
