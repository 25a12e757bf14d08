"""The results store: round-trips, run identity, atomicity across real OS processes, CSV export."""

import argparse
import csv
import json
import multiprocessing as mp
import sqlite3
import time

import pytest

from miniseries.cli import export as export_cli
from miniseries.cli import runs as runs_cli
from miniseries.errors import UserError
from miniseries.store.db import SCHEMA_VERSION, Store, open_store, run_id
from miniseries.store.export import export_csv

CURVE_POINTS = 5


def config(depth: int, budget: float = 1e15, **extra) -> dict:
    return {"preset": "cpu", "depth": depth, "budget": budget, "seed": 0, **extra}


def full_run_fields(depth: int = 3) -> dict:
    cfg = config(depth)
    return dict(
        kind="isoflop",
        study="demo",
        budget=1e15,
        depth=depth,
        preset="cpu",
        d_model=96,
        params_total=1_234_567,
        params_kaplan=654_321,
        params_matrices=600_000,
        tokens=9_876_543,
        flops=7.25e13,
        steps=321,
        ratio=8.0,
        lr_mult=1.0,
        run_dir=f"runs/{run_id(cfg)}",
        config_json=json.dumps(cfg),
    )


def curve_rows(n: int, start_step: int = 0) -> list[dict]:
    return [
        dict(step=s, tokens=1024 * s, flops=6.0e6 * s, val_bpb=3.0 - 0.01 * s, train_loss=None)
        for s in range(start_step, start_step + n)
    ]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "miniseries.db") as s:
        yield s


# -- identity ------------------------------------------------------------------------------------


def test_run_id_is_canonical_and_distinguishes_configs():
    a = {"depth": 3, "preset": "cpu", "opt": {"lr": 0.02, "betas": [0.8, 0.95]}}
    b = {"opt": {"betas": [0.8, 0.95], "lr": 0.02}, "preset": "cpu", "depth": 3}
    assert run_id(a) == run_id(b)
    assert len(run_id(a)) == 12 and int(run_id(a), 16) >= 0
    assert run_id(a) != run_id({**a, "depth": 4})
    assert run_id(a) != run_id({**a, "opt": {"lr": 0.021, "betas": [0.8, 0.95]}})


def test_ensure_run_reuses_existing_row_unchanged(store):
    cfg = config(3)
    rid = run_id(cfg)
    row1, created1 = store.ensure_run(rid, **full_run_fields(3))
    assert created1 and row1["status"] == "pending" and row1["created_at"]
    # the same config asked again (even with different field values) finds the same row untouched
    row2, created2 = store.ensure_run(run_id(dict(reversed(cfg.items()))), kind="single", depth=9)
    assert not created2
    assert row2 == row1
    store.update_run(rid, status="running")
    row3, created3 = store.ensure_run(rid, **full_run_fields(3))
    assert not created3
    assert row3["created_at"] == row1["created_at"] and row3["status"] == "running"
    assert len(store.list_runs()) == 1


# -- round trips ---------------------------------------------------------------------------------


def test_runs_round_trip_and_status_stamps(tmp_path):
    path = tmp_path / "proj" / "miniseries.db"
    fields = full_run_fields(3)
    rid = run_id(config(3))
    with Store(path) as s:
        row, _ = s.ensure_run(rid, **fields)
        assert row["started_at"] is None and row["finished_at"] is None
        s.update_run(rid, status="running")
        s.update_run(
            rid, status="done", val_bpb=1.2345678901234, core=0.0812, core_label="CORE-20",
            wall_s=12.5, train_s=10.25, tokens_per_s=9.6e5, mfu=0.31,
        )  # fmt: skip
    with Store(path) as s:  # reopened: everything persisted, bit-exact
        got = s.get_run(rid)
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for k, v in fields.items():
        assert got[k] == v, k
    assert got["val_bpb"] == 1.2345678901234 and got["core_label"] == "CORE-20"
    assert got["status"] == "done" and got["error"] is None
    assert got["created_at"] <= got["started_at"] <= got["finished_at"]
    assert json.loads(got["config_json"]) == config(3)


def test_update_run_rejects_programming_errors(store):
    rid = run_id(config(2))
    store.ensure_run(rid, kind="series", depth=2)
    with pytest.raises(ValueError, match="unknown runs columns"):
        store.update_run(rid, val_bpp=1.0)
    with pytest.raises(ValueError, match="status"):
        store.update_run(rid, status="finished")
    with pytest.raises(ValueError, match="kind"):
        store.ensure_run("abc", kind="sweep")
    with pytest.raises(ValueError, match="no run"):
        store.update_run("nonexistent00", status="done")
    store.update_run(rid, status="failed", error="CUDA out of memory")
    row = store.get_run(rid)
    assert row["status"] == "failed" and row["error"] == "CUDA out of memory"
    assert row["finished_at"] is not None


def test_list_runs_filters_and_order(store):
    made = []
    for budget in (1e16, 1e15):
        for depth in (4, 2, 3):
            kind = "isoflop" if depth != 3 else "series"
            rid = run_id(config(depth, budget))
            store.ensure_run(rid, kind=kind, study="s1", budget=budget, depth=depth)
            made.append(rid)
    store.update_run(made[0], status="done")
    order = [(r["budget"], r["depth"]) for r in store.list_runs()]
    assert order == sorted(order)
    assert len(store.list_runs(kind="isoflop")) == 4
    assert [r["run_id"] for r in store.list_runs(status="done")] == [made[0]]
    assert len(store.list_runs(kind="series", status="pending", study="s1")) == 2
    assert store.list_runs(study="other") == []


def test_curves_round_trip_and_rewrite_is_idempotent(store):
    rid = run_id(config(3))
    store.ensure_run(rid, kind="single")
    rows = curve_rows(10)
    store.add_curve(rid, rows)
    store.add_curve(rid, curve_rows(4, start_step=6))  # a resumed run rewrites steps 6..9
    got = store.curve(rid)
    assert [{k: g[k] for k in rows[0]} for g in got] == rows
    assert all(g["run_id"] == rid for g in got)
    store.add_curve(rid, [dict(step=9, tokens=1, flops=2.0, val_bpb=0.5)])
    assert len(store.curve(rid)) == 10 and store.curve(rid)[-1]["val_bpb"] == 0.5
    with pytest.raises(ValueError, match="unknown curves columns"):
        store.add_curve(rid, [dict(step=1, bpb=1.0)])
    with pytest.raises(sqlite3.IntegrityError):  # a curve for a run that was never created
        store.add_curve("nosuchrun000", rows[:1])


def test_core_tasks_round_trip(store):
    rid = run_id(config(3))
    store.ensure_run(rid, kind="single")
    rows = [
        dict(task="hellaswag", accuracy=0.31, centered=0.08, n_examples=500),
        dict(task="arc_easy", accuracy=0.45, centered=0.27, n_examples=500),
    ]
    store.add_core_tasks(rid, rows)
    got = [{k: r[k] for k in rows[0]} for r in store.core_tasks(rid)]
    assert got == sorted(rows, key=lambda r: r["task"])


def test_fits_latest_wins_and_filters_by_convention(store):
    assert store.latest_fit("isoflop_laws") is None
    f1 = store.add_fit("isoflop_laws", "total", {"a": 0.5, "b": 0.5, "points": [[1e15, 3]]})
    f2 = store.add_fit("isoflop_laws", "kaplan", {"a": 0.49})
    f3 = store.add_fit("isoflop_laws", "total", {"a": 0.51, "nested": {"x": [1, 2]}})
    store.add_fit("parametric", "total", {"E": 1.8})
    assert f1 < f2 < f3
    latest = store.latest_fit("isoflop_laws")
    assert latest["fit_id"] == f3 and latest["fit"] == {"a": 0.51, "nested": {"x": [1, 2]}}
    assert store.latest_fit("isoflop_laws", convention="kaplan")["fit"] == {"a": 0.49}
    assert store.latest_fit("isoflop_laws", convention="matrices") is None
    assert store.latest_fit("parametric")["convention"] == "total"


def test_predictions_are_immutable_and_predicting_again_adds_a_row(store):
    first = store.add_prediction("aaaaaaaaaaaa", {"val_bpb": 1.1})
    store.add_prediction("bbbbbbbbbbbb", {"val_bpb": 1.0})
    again = store.add_prediction("aaaaaaaaaaaa", {"val_bpb": 1.2})
    assert again > first
    got = [(p["run_id"], p["predicted"]) for p in store.predictions()]
    assert got == [
        ("aaaaaaaaaaaa", {"val_bpb": 1.1}),
        ("bbbbbbbbbbbb", {"val_bpb": 1.0}),
        ("aaaaaaaaaaaa", {"val_bpb": 1.2}),
    ]
    blind = store.first_prediction("aaaaaaaaaaaa")
    assert blind["prediction_id"] == first and blind["predicted"] == {"val_bpb": 1.1}
    assert [p["prediction_id"] for p in store.predictions("aaaaaaaaaaaa")] == [first, again]
    for sql in (
        "UPDATE predictions SET predicted_json = '{}' WHERE prediction_id = 1",
        "UPDATE predictions SET created_at = '2000-01-01' WHERE prediction_id = 1",
        "DELETE FROM predictions WHERE prediction_id = 1",
        "INSERT OR REPLACE INTO predictions VALUES (1, 'x', '{}', '2000-01-01')",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="never"):
            store.db.execute(sql)
    assert store.first_prediction("aaaaaaaaaaaa") == blind


def test_transaction_is_all_or_nothing(store):
    rid = run_id(config(5))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.ensure_run(rid, kind="single")
            store.add_curve(rid, curve_rows(3))
            raise RuntimeError("crash mid-write")
    assert store.get_run(rid) is None and store.curve(rid) == []
    with store.transaction():
        store.ensure_run(rid, kind="single")
        store.add_curve(rid, curve_rows(3))
    assert len(store.curve(rid)) == 3


def test_snapshot_reads_one_moment_while_another_connection_writes(tmp_path):
    path = tmp_path / "miniseries.db"
    with Store(path) as reader, Store(path) as writer:
        writer.ensure_run("aaaaaaaaaaaa", kind="single")
        with reader.snapshot():
            assert len(reader.list_runs()) == 1
            writer.ensure_run("bbbbbbbbbbbb", kind="single")  # commits while the reader reads
            assert len(reader.list_runs()) == 1
        assert len(reader.list_runs()) == 2


# -- export --------------------------------------------------------------------------------------


def _filled_store(s: Store) -> None:
    for depth in (2, 3):
        rid = run_id(config(depth))
        s.ensure_run(rid, **full_run_fields(depth))
        s.add_curve(rid, curve_rows(4))
        s.add_core_tasks(rid, [dict(task="piqa", accuracy=0.6, centered=0.2, n_examples=100)])
    s.update_run(rid, status="done", val_bpb=1.0 / 3.0, error='has, "quotes"\nand a newline')


@pytest.mark.parametrize("table", ["runs", "curves", "core_tasks"])
def test_export_csv_equals_table(store, tmp_path, table):
    _filled_store(store)
    out = tmp_path / "out" / f"{table}.csv"
    n = export_csv(store, out, table=table)
    columns, rows = store.rows(table)
    with open(out, newline="") as f:
        got = list(csv.reader(f))
    assert got[0] == columns and n == len(rows) == len(got) - 1 > 0
    for want, have in zip(rows, got[1:], strict=True):
        for w, h in zip(want, have, strict=True):
            if w is None:
                assert h == ""
            elif isinstance(w, float):
                assert float(h) == w  # exact: CSV carries the shortest round-trip repr
            else:
                assert h == str(w)
    assert not list(out.parent.glob(".*tmp*"))  # the temp file was renamed away


# -- bad files -----------------------------------------------------------------------------------


def test_not_a_database_is_a_user_error_and_left_untouched(tmp_path):
    path = tmp_path / "miniseries.db"
    content = b"step,val_bpb\n1,3.0\n" * 100
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a miniseries results store") as e:
        Store(path)
    assert str(path) in str(e.value)
    assert path.read_bytes() == content
    assert not (tmp_path / "miniseries.db-wal").exists()


def test_someone_elses_sqlite_database_is_left_alone(tmp_path):
    path = tmp_path / "miniseries.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (x TEXT)")
    db.close()
    with pytest.raises(UserError, match="not a miniseries results store"):
        Store(path)
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master")]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    assert tables == ["notes"] and mode == "delete"


def test_newer_schema_is_a_user_error(tmp_path):
    path = tmp_path / "miniseries.db"
    with Store(path) as s:
        sql = "UPDATE meta SET value = ? WHERE key = 'schema_version'"
        s.db.execute(sql, (str(SCHEMA_VERSION + 1),))
    with pytest.raises(UserError, match="newer miniseries"):
        Store(path)


def test_missing_store_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no results store at .*miniseries sweep"):
        open_store(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


# -- CLI -----------------------------------------------------------------------------------------


def _cli(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_cli_runs_and_export(tmp_path, capsys):
    with open_store(tmp_path) as s:
        _filled_store(s)
        ids = [r["run_id"] for r in s.list_runs()]
    assert runs_cli.run(_cli(runs_cli, ["runs", "--project", str(tmp_path), "--json"])) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == ids and rows[0]["config"] == config(2)
    args = _cli(runs_cli, ["runs", "--project", str(tmp_path), "--status", "done", "--json"])
    runs_cli.run(args)
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["done"]
    assert runs_cli.run(_cli(runs_cli, ["runs", "--project", str(tmp_path)])) == 0
    table = capsys.readouterr().out
    assert all(rid in table for rid in ids) and "1.23M" in table and "0.3333" in table

    out = tmp_path / "curves.csv"
    args = _cli(export_cli, ["export", "--project", str(tmp_path), "--csv", str(out)] + [
        "--table", "curves"])  # fmt: skip
    assert export_cli.run(args) == 0
    assert "wrote 8 curves rows" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 9

    with pytest.raises(UserError, match="no results store"):
        runs_cli.run(_cli(runs_cli, ["runs", "--project", str(tmp_path / "empty")]))


# -- concurrency (real OS processes) -------------------------------------------------------------


def _writer(path: str, tag: int, n_runs: int, ready=None, observed=None) -> None:
    """Write n_runs runs, each with its curve and a counter (steps) in one transaction.

    With `observed` (the reader's observation counter), pause every 100 runs until the
    reader has made two more reads, so the two processes overlap however the OS schedules
    them (a fast writer once finished before the reader's first read)."""
    if ready is not None:
        ready.wait(30)
    with Store(path) as s:
        for i in range(n_runs):
            if observed is not None and i and i % 100 == 0:
                seen, deadline = observed.value, time.monotonic() + 30
                while observed.value < seen + 2 and time.monotonic() < deadline:
                    time.sleep(0.001)
            rid = run_id({"writer": tag, "i": i})
            with s.transaction():
                s.ensure_run(rid, kind="isoflop", study=f"w{tag}", depth=i % 7 + 1)
                s.add_curve(rid, curve_rows(CURVE_POINTS))
                s.update_run(rid, steps=CURVE_POINTS, status="done", val_bpb=1.0 + i)


def _reader(path: str, expect_runs: int, ready, out, observed) -> None:
    """Read while a writer writes; report (observations, distinct run counts, torn runs seen)."""
    s = None
    seen_counts, torn, observations = set(), 0, 0

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if s is None:
            try:
                s = Store(path, create=False)
            except UserError:
                continue
        rows = s.list_runs()
        observations += 1
        seen_counts.add(len(rows))
        for r in rows:
            if r["status"] != "done" or len(s.curve(r["run_id"])) != r["steps"]:
                torn += 1
        with observed.get_lock():
            observed.value += 1
        ready.set()  # the writer starts after the reader's first read
        if len(rows) == expect_runs:
            break
    out.put((observations, sorted(seen_counts), torn))


def test_two_writer_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "miniseries.db")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, tag, 200)) for tag in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Store(path) as s:
        assert len(s.list_runs()) == 400
        assert len(s.list_runs(study="w0")) == len(s.list_runs(study="w1")) == 200
        n_curve = s.db.execute("SELECT COUNT(*) FROM curves").fetchone()[0]
        assert n_curve == 400 * CURVE_POINTS
        assert all(r["steps"] == CURVE_POINTS and r["status"] == "done" for r in s.list_runs())


def test_reader_never_sees_a_half_written_run(tmp_path):
    path = str(tmp_path / "miniseries.db")
    Store(path).close()
    ctx = mp.get_context("spawn")
    ready, out, observed = ctx.Event(), ctx.Queue(), ctx.Value("i", 0)
    reader = ctx.Process(target=_reader, args=(path, 300, ready, out, observed))
    writer = ctx.Process(target=_writer, args=(path, 7, 300, ready, observed))
    reader.start()
    writer.start()
    observations, counts, torn = out.get(timeout=120)
    writer.join(120)
    reader.join(120)
    assert writer.exitcode == 0 and reader.exitcode == 0
    assert counts[-1] == 300
    assert len(counts) >= 3, f"reader never overlapped the writer: {counts}"
    assert torn == 0


def _schema_1_store(path):
    """A store as schema 1 wrote it: the version stamp and the old shapes, by raw SQL."""
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.execute("DROP TABLE predictions")  # schema 1: one replaceable prediction per run
    db.execute(
        "CREATE TABLE predictions (run_id TEXT PRIMARY KEY, predicted_json TEXT NOT NULL, "
        "created_at TEXT NOT NULL)"
    )
    held_out = {  # what study.held_out_prediction returned in schema 1
        "budget": 3e14, "n_opt": 2.0e6, "n_lo": 1.5e6, "n_hi": 2.6e6, "d_opt": 2.5e7,
        "loss": 1.70, "loss_lo": 1.68, "loss_hi": 1.73, "fit_budgets": [1e13, 1e14],
        "convention": "total", "method": "isoflop",
    }  # fmt: skip
    one_knob = {  # Prediction.to_dict() of schema 1, plus the fit id and the plan's fields
        "budget": 1e12, "n_opt": 9.0e5, "d_opt": 1.8e7, "loss": 2.10, "n_interval": [8e5, 1e6],
        "d_interval": [1.6e7, 2e7], "loss_interval": [2.05, 2.16], "method": "isoflop",
        "convention": "total", "n_label": "N (total params)", "fit_id": 1, "depth": 3,
        "params": 880000, "tokens": 18000000, "steps": 120, "flops": 1.0e12,
    }  # fmt: skip
    preset = {
        "method": "preset_ratio", "budget": 1e11, "ratio": 10.0, "depth": 2, "params": 5e5,
        "convention": "total", "tokens": 5e6, "steps": 40, "flops": 1e11,
    }  # fmt: skip
    for rid, obj in (("budget:3e+14", held_out), ("knob", one_knob), ("knob0", preset)):
        db.execute("INSERT INTO predictions VALUES (?, ?, ?)", (rid, json.dumps(obj), "2026-01-01"))
    fit = {
        "convention": "total",
        "isoflop": {
            "n_law": {"k": 0.1, "exponent": 0.5, "interval": [0.45, 0.55]},
            "d_law": {"k": 1.0, "exponent": 0.5, "interval": [0.45, 0.55]},
            "loss_law": {"k": 9.0, "exponent": -0.05, "interval": [-0.06, -0.04]},
            "ratio": 20.0, "ratio_interval": [15.0, 26.0],
            "ratio_trend": 0.0, "ratio_trend_interval": [-0.1, 0.1],
        },
        "parametric": {"E": 1.7, "a": 0.45, "intervals": {"E": [1.6, 1.8], "a": [0.4, 0.5]}},
    }  # fmt: skip
    db.execute(
        "INSERT INTO fits (created_at, kind, convention, json) VALUES (?, ?, ?, ?)",
        ("2026-01-01", "isoflop_laws", "total", json.dumps(fit)),
    )
    db.execute(
        "INSERT INTO fits (created_at, kind, convention, json) VALUES (?, ?, ?, ?)",
        ("2026-01-01", "lr_transfer", "cpu", json.dumps({"group": "all", "ok": True})),
    )
    db.commit()
    db.close()


def test_schema_1_store_is_migrated_to_one_interval_and_prediction_shape(tmp_path):
    from miniseries.laws.base import Interval, Prediction

    path = tmp_path / "miniseries.db"
    _schema_1_store(path)
    with Store(path) as store:
        assert store._schema_version() == SCHEMA_VERSION == 2
        preds = {p["run_id"]: Prediction.from_dict(p["predicted"]) for p in store.predictions()}
        fit = store.latest_fit("isoflop_laws")["fit"]
    held = preds["budget:3e+14"]
    assert held.loss == Interval(1.70, 1.68, 1.73, 0.9, "confidence")
    assert held.n_opt == Interval(2.0e6, 1.5e6, 2.6e6) and held.fit_budgets == (1e13, 1e14)
    assert held.d_opt.point == 2.5e7 and not held.d_opt.bounded  # schema 1 had no D* interval
    knob = preds["knob"]
    assert knob.loss == Interval(2.10, 2.05, 2.16) and knob.fit_id == 1
    assert knob.plan == {"depth": 3, "params": 880000, "convention": "total",
                         "tokens": 18000000, "steps": 120, "flops": 1.0e12}  # fmt: skip
    flat = preds["knob0"]
    assert flat.loss is None and flat.ratio == 10.0 and flat.plan["depth"] == 2
    iso = fit["isoflop"]
    assert Interval.from_dict(iso["n_law"]["interval"]) == Interval(0.5, 0.45, 0.55)
    assert Interval.from_dict(iso["ratio_interval"]) == Interval(20.0, 15.0, 26.0)
    assert Interval.from_dict(iso["ratio_trend_interval"]) == Interval(0.0, -0.1, 0.1)
    assert Interval.from_dict(fit["parametric"]["intervals"]["a"]) == Interval(0.45, 0.4, 0.5)
    with Store(path) as store:
        lr = store.latest_fit("lr_transfer")
    assert lr["convention"] is None and lr["fit"] == {"group": "all", "ok": True, "preset": "cpu"}
    with Store(path) as store:  # opening again changes nothing
        again = {p["run_id"]: p["predicted"] for p in store.predictions()}
        assert [p["created_at"] for p in store.predictions()] == ["2026-01-01"] * 3
        with pytest.raises(sqlite3.DatabaseError, match="never"):  # and they are immutable now
            store.db.execute("DELETE FROM predictions")
    assert again == {k: v.to_dict() for k, v in preds.items()}
