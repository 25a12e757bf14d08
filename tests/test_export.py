"""`miniseries export --parquet` and `miniseries runs --json`: what pandas/polars users load.

Real SQLite stores, real pyarrow, through the CLI entry point. Expected values and types are the
ones these tests insert, never read back from the exporter.
"""

import csv
import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from miniseries.cli import main
from miniseries.store.db import RUN_COLUMNS, Store, open_store

REPO = Path(__file__).resolve().parents[1]

# the runs columns by the type a Parquet reader must see (written out here, not taken from code)
RUN_INTS = {
    "depth", "d_model", "params_total", "params_kaplan", "params_matrices", "tokens", "steps"
}  # fmt: skip
RUN_FLOATS = {
    "budget", "flops", "ratio", "lr_mult", "val_bpb", "core", "wall_s", "train_s",
    "tokens_per_s", "mfu",
}  # fmt: skip
RUN_REQUIRED = {"kind", "status", "created_at"}  # NOT NULL in the schema

CFG_FULL = {"preset": "cpu", "depth": 2, "budget": 1e15, "opt": {"lr": 0.02, "betas": [0.8, 0.95]}}
CFG_DONE = {"preset": "cpu", "depth": 3, "budget": 1e15}

# What the tests insert, per run_id. The store adds created_at; update_run adds nothing more,
# since FINISHED gives started_at and finished_at.
RUNS = {
    # budget NULL sorts first (ORDER BY budget, depth, ...): almost every column NULL
    "aaaa00000000": dict(kind="single"),
    # depth 2, every column filled: ints (one above 2**53, exact only as int64), floats (one
    # given as a Python int to a REAL column, which must come back as 1.0), text, JSON text
    "bbbb00000000": dict(
        kind="isoflop",
        study='demo, "quoted"',
        budget=1e15,
        depth=2,
        preset="cpu",
        d_model=96,
        params_total=1_234_567,
        params_kaplan=654_321,
        params_matrices=600_000,
        tokens=2**53 + 1,
        flops=7.25e13,
        steps=321,
        ratio=8.0,
        lr_mult=1,
        wall_s=1e-300,
        run_dir="runs/bbbb00000000",
        config_json=json.dumps(CFG_FULL),
    ),
    # depth 3, then finished as failed (FINISHED): val_bpb 1/3 (exact only without a lossy text
    # round trip), a negative float, unicode, quotes and a newline
    "cccc00000000": dict(
        kind="isoflop",
        study="demo",
        budget=1e15,
        depth=3,
        tokens=0,
        config_json=json.dumps(CFG_DONE),
    ),
}
FINISHED = dict(
    status="failed",
    val_bpb=1.0 / 3.0,
    core=-0.125,
    core_label="CORE-20",
    error='diverged: loss "nan",\nnaïve ☃',
    started_at="2025-01-02T03:04:05.000006+00:00",
    finished_at="2025-01-02T04:04:05.000006+00:00",
)
RUN_ORDER = ["aaaa00000000", "bbbb00000000", "cccc00000000"]

CURVES = {
    "bbbb00000000": [
        dict(step=0, tokens=0, flops=0.0, val_bpb=3.5, train_loss=None),
        dict(step=10, tokens=10_240, flops=6.0e7, val_bpb=2.75, train_loss=2.5),
        dict(step=20, tokens=None, flops=1.2e8, val_bpb=None, train_loss=0.1 + 0.2),
    ],
    "cccc00000000": [dict(step=5, tokens=5_120, flops=3.0e7, val_bpb=1.0 / 7.0, train_loss=None)],
}


def expected_runs(store: Store) -> list[dict]:
    """Every column of every inserted run, in listing order. created_at is the store's own."""
    out = []
    for rid in RUN_ORDER:
        row = {c: None for c in RUN_COLUMNS} | RUNS[rid] | {"run_id": rid, "status": "pending"}
        if rid == "cccc00000000":
            row |= FINISHED
        if row["lr_mult"] is not None:
            row["lr_mult"] = float(row["lr_mult"])
        row["created_at"] = store.get_run(rid)["created_at"]  # stamped by the store at insert
        out.append(row)
    return out


def expected_curves() -> list[dict]:
    return [
        {"run_id": rid, **point}
        for rid in sorted(CURVES)
        for point in sorted(CURVES[rid], key=lambda p: p["step"])
    ]


@pytest.fixture
def project(tmp_path) -> Path:
    """A project directory whose store holds RUNS, CURVES, a CORE task, a fit and a prediction."""
    proj = tmp_path / "proj"
    with Store(proj / "miniseries.db") as s:
        for rid, fields in RUNS.items():
            s.ensure_run(rid, **fields)
        s.update_run("cccc00000000", **FINISHED)
        for rid, points in CURVES.items():
            s.add_curve(rid, points)
        s.add_core_tasks("cccc00000000", [dict(task="piqa", accuracy=0.625, n_examples=100)])
        s.add_fit("isoflop", "kaplan", {"a": 0.5, "interval": [0.4, 0.6]})
        s.add_prediction("cccc00000000", {"val_bpb": 1.25})
    return proj


def export(project: Path, fmt: str, path: Path, table: str = "runs") -> int:
    return main(["export", "--project", str(project), f"--{fmt}", str(path), "--table", table])


def one_line_error(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("miniseries"), err
    return err


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".tmp" in p.name]


# -- Parquet: values and types -------------------------------------------------------------------


def test_parquet_runs_have_inserted_values_and_types(project, tmp_path, capsys):
    out = tmp_path / "out" / "runs.parquet"
    assert export(project, "parquet", out) == 0
    assert capsys.readouterr().out.strip() == f"wrote 3 runs rows to {out}"
    table = pq.read_table(out)
    with open_store(project) as s:
        want = expected_runs(s)

    assert table.column_names == list(RUN_COLUMNS)
    assert RUN_INTS | RUN_FLOATS | RUN_REQUIRED < set(RUN_COLUMNS)
    for field in table.schema:
        if field.name in RUN_INTS:
            assert field.type == pa.int64(), field
        elif field.name in RUN_FLOATS:
            assert field.type == pa.float64(), field
        else:  # text, including config_json: JSON stays a string
            assert field.type == pa.string(), field
        assert field.nullable == (field.name not in RUN_REQUIRED), field

    got = table.to_pylist()
    assert [r["run_id"] for r in got] == RUN_ORDER  # the listing order: NULL budget first
    assert got == want  # every value exact: floats bit for bit, NULL as None, 2**53 + 1 intact
    for have, w in zip(got, want, strict=True):
        for c in RUN_FLOATS:
            assert have[c] is None or type(have[c]) is float, (c, have[c])
        assert have["created_at"] and w["created_at"]
    assert json.loads(got[1]["config_json"]) == CFG_FULL
    assert leftovers(out.parent) == []


def test_parquet_curves_have_inserted_values_and_types(project, tmp_path, capsys):
    out = tmp_path / "curves.parquet"
    assert export(project, "parquet", out, table="curves") == 0
    assert "wrote 4 curves rows" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.schema == pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("step", pa.int64(), nullable=False),
            pa.field("tokens", pa.int64()),
            pa.field("flops", pa.float64()),
            pa.field("val_bpb", pa.float64()),
            pa.field("train_loss", pa.float64()),
        ]
    )
    assert table.to_pylist() == expected_curves()
    assert table.column("train_loss").null_count == 2
    assert table.column("flops").to_pylist()[0] == 0.0  # a zero is not a NULL
    assert leftovers(tmp_path) == []


def test_parquet_of_an_empty_table_keeps_its_typed_columns(tmp_path, capsys):
    proj = tmp_path / "empty"
    Store(proj / "miniseries.db").close()
    out = tmp_path / "predictions.parquet"
    assert export(proj, "parquet", out, table="predictions") == 0
    assert "wrote 0 predictions rows" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.num_rows == 0
    assert [(f.name, f.type) for f in table.schema] == [
        ("prediction_id", pa.int64()),
        ("run_id", pa.string()),
        ("predicted_json", pa.string()),
        ("created_at", pa.string()),
    ]


# -- CSV and Parquet agree -----------------------------------------------------------------------


@pytest.mark.parametrize("table", ["runs", "curves", "core_tasks", "fits", "predictions"])
def test_csv_and_parquet_exports_agree_row_for_row(project, tmp_path, capsys, table):
    assert export(project, "csv", tmp_path / "t.csv", table) == 0
    assert export(project, "parquet", tmp_path / "t.parquet", table) == 0
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as f:
        header, *csv_rows = list(csv.reader(f))
    pq_table = pq.read_table(tmp_path / "t.parquet")
    assert header == pq_table.column_names
    pq_rows = pq_table.to_pylist()
    assert len(csv_rows) == len(pq_rows) > 0
    for cells, row in zip(csv_rows, pq_rows, strict=True):
        for name, cell in zip(header, cells, strict=True):
            value, typ = row[name], pq_table.schema.field(name).type
            if value is None:
                assert cell == "", (name, cell)
            elif typ == pa.int64():
                assert int(cell) == value, (name, cell, value)
            elif typ == pa.float64():
                assert float(cell) == value, (name, cell, value)  # exact: repr round-trips
            else:
                assert typ == pa.string() and cell == value, (name, cell, value)


# -- atomic write and errors ---------------------------------------------------------------------


def test_exactly_one_of_csv_and_parquet(project, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--project", str(project)])
    assert e.value.code == 2
    assert "--csv --parquet is required" in one_line_error(capsys.readouterr().err)
    args = ["--csv", str(tmp_path / "a.csv"), "--parquet", str(tmp_path / "a.parquet")]
    with pytest.raises(SystemExit) as e:
        main(["export", "--project", str(project), *args])
    assert e.value.code == 2
    assert "not allowed with" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "a.parquet").exists()


def test_invalid_table_leaves_an_existing_file_as_it_was(project, tmp_path, capsys):
    out = tmp_path / "runs.parquet"
    out.write_bytes(b"previous contents")
    with pytest.raises(SystemExit) as e:
        export(project, "parquet", out, table="nope")
    assert e.value.code == 2
    assert "invalid choice: 'nope'" in one_line_error(capsys.readouterr().err)
    assert out.read_bytes() == b"previous contents" and leftovers(tmp_path) == []


def test_value_that_does_not_fit_its_column_is_one_line_and_writes_nothing(
    project, tmp_path, capsys
):
    out = tmp_path / "runs.parquet"
    assert export(project, "parquet", out) == 0
    before = out.read_bytes()
    db = sqlite3.connect(project / "miniseries.db")  # a hand edit: SQLite keeps text as text
    with db:
        db.execute("UPDATE runs SET depth = 'deep' WHERE run_id = 'cccc00000000'")
    db.close()
    capsys.readouterr()
    assert export(project, "parquet", out) == 2
    err = one_line_error(capsys.readouterr().err)
    assert "'deep'" in err and "'depth'" in err and "row 3" in err
    assert out.read_bytes() == before and leftovers(tmp_path) == []


def test_write_that_fails_midway_leaves_an_existing_file_as_it_was(project, tmp_path):
    """A real failure after the temp file exists: a file-size limit (RLIMIT_FSIZE binds root
    too) makes the write fail with EFBIG, like a full disk. The store is only read."""
    pytest.importorskip("resource")
    limit = 64 * 1024
    with Store(project / "miniseries.db") as s:  # ~1 MB of incompressible floats
        points = [
            dict(step=i, tokens=i, flops=math.sin(i) * 1e9, val_bpb=math.cos(i), train_loss=None)
            for i in range(100, 40_100)
        ]
        s.add_curve("cccc00000000", points)
    out = tmp_path / "curves.parquet"
    out.write_bytes(b"previous export")
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))\n"
        "from miniseries.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    cmd = [sys.executable, "-c", script, "export", "--project", str(project)]
    cmd += ["--parquet", str(out), "--table", "curves"]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    err = one_line_error(done.stderr)
    assert f"cannot write {out} (File too large)" in err
    assert out.read_bytes() == b"previous export" and leftovers(tmp_path) == []
    # without the limit the same export works and holds every row
    assert export(project, "parquet", out, table="curves") == 0
    assert pq.read_table(out).num_rows == 4 + len(points)


def test_unwritable_parquet_path_is_one_line(project, tmp_path, capsys):
    target = tmp_path / "a_folder"
    target.mkdir()
    assert export(project, "parquet", target) == 2
    err = one_line_error(capsys.readouterr().err)
    assert f"cannot write {target}" in err and "writable folder" in err
    assert target.is_dir() and list(target.iterdir()) == [] and leftovers(tmp_path) == []


# -- runs --json ---------------------------------------------------------------------------------


def test_runs_json_is_an_array_of_flat_records(project, capsys):
    assert main(["runs", "--project", str(project), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    with open_store(project) as s:
        want = expected_runs(s)
    assert isinstance(records, list) and len(records) == len(want)
    for rec, w in zip(records, want, strict=True):
        assert set(rec) == set(RUN_COLUMNS) - {"config_json"} | {"config"}
        config = w.pop("config_json")
        assert rec.pop("config") == (json.loads(config) if config else None)
        assert rec == w  # every other column a scalar with the inserted value
        assert all(v is None or isinstance(v, str | int | float) for v in rec.values())
    assert records[0]["budget"] is None and records[1]["tokens"] == 2**53 + 1


def test_runs_json_of_an_empty_store_is_an_empty_array(tmp_path, capsys):
    Store(tmp_path / "miniseries.db").close()
    assert main(["runs", "--project", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "[]" and json.loads(out) == []
