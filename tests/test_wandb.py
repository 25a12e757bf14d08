"""Weights & Biases logging, offline (no network, no login): a sweep with --wandb leaves one W&B
run per training run whose config is the run's config.json and whose history is the run's
log.jsonl, plus CORE and one fit run; `fit --project` logs its fit; a W&B id is no part of a run's
identity; and without the flag or $MINISERIES_WANDB wandb is never imported.

The offline runs are read back from their ``.wandb`` files: wandb 0.30 ships no Python reader of
its own, so ``records`` below decodes the file's container (a LevelDB-style log) into wandb's own
protobuf ``Record``s (``wandb.proto.wandb_internal_pb2``). Expected values come from the run
folders and the store, never from the logger.
"""

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from corpus_helpers import write_tiny_core_bundle

from miniseries.store.db import open_store
from miniseries.study.runspec import RunSpec

TINY = {  # the smallest shapes the sweep tests use
    "vocab-size": 512,
    "seq-len": 64,
    "batch-tokens": 512,
    "device-batch-size": 4,
    "val-tokens": 2048,
}
TINY_FLAGS = [x for k, v in TINY.items() for x in (f"--{k}", str(v))]


def data_flags(tiny_data) -> list[str]:
    tokens, tok = tiny_data
    return ["--data", str(tokens), "--tokenizer", str(tok), *TINY_FLAGS]


@pytest.fixture
def offline(tmp_path, monkeypatch) -> Path:
    """W&B offline, everything it writes under tmp: the folder whose wandb/ holds the runs."""
    root = tmp_path / "wandb_home"
    for var, sub in (("DIR", "dir"), ("CONFIG_DIR", "config"), ("CACHE_DIR", "cache")):
        (root / sub).mkdir(parents=True)
        monkeypatch.setenv(f"WANDB_{var}", str(root / sub))
    monkeypatch.setenv("WANDB_DATA_DIR", str(root / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    return root / "dir"


# ---------------------------------------------------------------------------------------------
# Reading offline runs

BLOCK = 32768  # the log's block size; a record header never straddles two blocks
HEADER = struct.Struct("<4sHB")  # ":W&B", magic 0xBEE1, version 0
CHUNK = struct.Struct("<IHB")  # CRC-32 of (type byte + data), data length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    """The protobuf Records of a .wandb file, each chunk's checksum checked."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert HEADER.unpack_from(data) == (b":W&B", 0xBEE1, 0)
    out, pos, parts = [], HEADER.size, b""
    while pos + CHUNK.size <= len(data):
        if BLOCK - pos % BLOCK < CHUNK.size:  # the block's zero padding
            pos += BLOCK - pos % BLOCK
            continue
        crc, n, kind = CHUNK.unpack_from(data, pos)
        chunk = data[pos + CHUNK.size : pos + CHUNK.size + n]
        assert crc == zlib.crc32(bytes([kind]) + chunk), f"bad checksum at {pos} in {path}"
        pos += CHUNK.size + n
        parts += chunk
        if kind in (FULL, LAST):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(parts)
            out.append(rec)
            parts = b""
    return out


def _items(items) -> dict:
    return {(it.key or ".".join(it.nested_key)): json.loads(it.value_json) for it in items}


def offline_runs(wandb_dir: Path) -> list[dict]:
    """Each offline run: id, project, name, group, job_type, config, history (rows by step),
    summary (the last value of each key) and exit code (None: never finished)."""
    runs = []
    for folder in sorted((wandb_dir / "wandb").glob("offline-run-*")):
        [path] = folder.glob("run-*.wandb")
        run = {"config": {}, "history": {}, "summary": {}, "exit_code": None, "folder": folder}
        for rec in records(path):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                r = rec.run
                run |= {"id": r.run_id, "project": r.project, "name": r.display_name}
                run |= {"group": r.run_group, "job_type": r.job_type}
                run["config"].update(_items(r.config.update))
            elif kind == "config":
                run["config"].update(_items(rec.config.update))
            elif kind == "history":
                row = _items(rec.history.item)
                run["history"][row["_step"]] = row
            elif kind == "summary":
                run["summary"].update(_items(rec.summary.update))
            elif kind == "exit":
                run["exit_code"] = rec.exit.exit_code
        runs.append(run)
    return runs


# ---------------------------------------------------------------------------------------------
# The sweep


def tiny_bundle(root: Path) -> None:
    """The tests' one-task CORE bundle, laid where the offline bundle lives."""
    write_tiny_core_bundle(root)
    (root / "sources.json").write_text("{}")


def miniseries(*argv, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "miniseries", *map(str, argv)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def service_endings(wandb_dir: Path) -> tuple[int, int, int]:
    """(started, shut down by their process, left to notice their process died) of the wandb
    services behind the runs, from wandb-core's own log (WANDB_CACHE_DIR/wandb/logs). A forked
    worker leaves by os._exit, which skips wandb's atexit teardown: the last kind."""
    text = "".join(p.read_text() for p in (wandb_dir.parent / "cache").glob("wandb/logs/*.log"))
    ends = ("main: starting server", "server shutdown complete", "parent process exited")
    return tuple(text.count(e) for e in ends)


def test_sweep_logs_each_run_its_core_and_the_fit(tiny_data, tmp_path, offline):
    from miniseries.evaluate.offline_bundle import default_out

    tiny_bundle(default_out())  # the cache is this test's own (conftest)
    project = tmp_path / "p"
    env = dict(os.environ, MINISERIES_WANDB="not-this-one", OMP_WAIT_POLICY="PASSIVE")
    res = miniseries(
        "sweep", "--flops", "5e9", "--depths", "1,2", "--min-steps", 1, "--evals", 3,
        *data_flags(tiny_data), "--project", project, "--study", "wb", "--workers", 2,
        "--threads", 1, "--quiet", "--core", 4, "--wandb", "miniseries-test", env=env,
    )  # fmt: skip
    assert "wandb" not in (res.stdout + res.stderr).lower()  # quiet: the sweep's output only
    started, stopped, orphaned = service_endings(offline)
    assert started == stopped == 5 and orphaned == 0  # 2 runs, their 2 CORE, the fit
    with open_store(project, create=False) as store:
        rows = store.list_runs()
    assert len(rows) == 2 and all(r["status"] == "done" and r["core"] is not None for r in rows)

    runs = offline_runs(offline)
    assert all(r["project"] == "miniseries-test" and r["exit_code"] == 0 for r in runs)
    [fit] = [r for r in runs if r["job_type"] == "fit"]
    by_name = {}
    for r in runs:
        if r is not fit:
            by_name.setdefault(r["name"], []).append(r)
    assert sorted(by_name) == sorted(row["run_id"] for row in rows)
    for row in rows:
        rd = Path(row["run_dir"])
        assert "wandb" not in (rd / "train.stderr").read_text().lower()  # workers quiet too
        trained, core = by_name[row["run_id"]]  # training, then the CORE added after it
        assert trained["id"] == core["id"]  # one W&B run: the CORE session resumes it
        assert (trained["group"], trained["job_type"]) == ("wb", "isoflop")
        config = json.loads((rd / "config.json").read_text())
        assert {k: v for k, v in trained["config"].items() if k != "_wandb"} == config
        assert config["train"]["depth"] == row["depth"] and config["plan"]["steps"] == row["steps"]
        assert config["train"]["wandb"] == "miniseries-test"  # the flag beat the env

        logged = {}  # log.jsonl's records, merged by step as W&B merges one step's logs
        for line in (rd / "log.jsonl").read_text().splitlines():
            rec = json.loads(line)
            logged.setdefault(rec.pop("step"), {}).update(rec)
        history = {
            step: {k: v for k, v in h.items() if not k.startswith("_")}
            for step, h in trained["history"].items()
        }
        assert history == logged  # every metric, every step, exact
        val = {s: r["val_bpb"] for s, r in logged.items() if "val_bpb" in r}
        assert len(val) == 3 and sum("train_loss" in r for r in logged.values()) == row["steps"]

        summary = json.loads((rd / "summary.json").read_text())
        for key in ("val_bpb", "steps", "tokens", "flops", "train_s", "params"):
            assert trained["summary"][key] == summary[key]
        assert core["summary"]["core"] == row["core"]
        assert core["summary"]["core_label"] == row["core_label"] == "CORE-1"

    assert (fit["group"], fit["config"]["n_runs"]) == ("wb", 2)
    assert any("parabola needs 3" in n or "2 usable" in n for n in fit["config"]["notes"])

    # `miniseries fit --project`, W&B from the env alone: its saved fit, and the report's figures
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (project / "report").mkdir()
    plt.plot([1, 2], [3, 4])
    plt.savefig(project / "report" / "isoflop.png")
    plt.close("all")
    env["MINISERIES_WANDB"] = "from-env"
    miniseries("fit", "--project", project, "--bootstrap", 20, "--json", env=env)
    [new] = [r for r in offline_runs(offline) if r["project"] == "from-env"]
    with open_store(project, create=False) as store:
        saved = store.latest_fit("isoflop_laws")
    assert (new["name"], new["job_type"]) == (f"fit #{saved['fit_id']}", "fit")
    assert new["config"]["n_bootstrap"] == 20 and new["config"]["fit_id"] == saved["fit_id"]
    assert new["config"]["notes"] == saved["fit"]["notes"]
    [image] = [h for h in new["history"].values() if "figures/isoflop.path" in h]  # flattened
    assert image["figures/isoflop._type"] == "image-file"
    assert (new["folder"] / "files" / image["figures/isoflop.path"]).is_file()


# ---------------------------------------------------------------------------------------------
# Off by default; identity; a missing package


SCRIPT = """
import sys
if sys.argv[1] == "blocked":
    sys.modules["wandb"] = None  # as if not installed: `import wandb` raises ImportError
from miniseries.cli import main
code = main(sys.argv[2:])
print(code, "wandb" in sys.modules and sys.modules["wandb"] is not None)
"""


def run_script(mode, argv, tmp_path) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MINISERIES_WANDB"))}
    cmd = [sys.executable, "-c", SCRIPT, mode, *map(str, argv)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    return res.stdout.strip().splitlines()[-1], res.stderr


def test_without_the_flag_wandb_is_never_imported(tiny_data, tmp_path):
    argv = ["train", "--depth", 1, "--steps", 3, "--out", tmp_path / "r", "--quiet"]
    last, err = run_script("plain", argv + data_flags(tiny_data), tmp_path)
    assert last == "0 False", err[-2000:]
    assert (tmp_path / "r" / "summary.json").exists()


def test_wandb_not_installed_is_one_line_before_training(tiny_data, tmp_path):
    argv = ["train", "--depth", 1, "--steps", 3, "--out", tmp_path / "r", "--wandb", "x"]
    last, err = run_script("blocked", argv + data_flags(tiny_data), tmp_path)
    assert last == "2 False"
    assert err.strip().splitlines() == [
        "miniseries: error: W&B logging (--wandb or $MINISERIES_WANDB) needs the wandb package: "
        "pip install 'miniseries[wandb]'"
    ]
    assert not (tmp_path / "r" / "log.jsonl").exists()


def test_wandb_is_no_part_of_a_runs_identity(tiny_data, tmp_path):
    tokens, tok = tiny_data
    plain = RunSpec(2, 12, str(tokens), str(tok), kind="isoflop", study="s")
    logged = RunSpec(2, 12, str(tokens), str(tok), kind="isoflop", study="s", wandb="p")
    assert "wandb" not in logged.identity() and logged.run_id == plain.run_id
    fields = logged.train_fields(tmp_path / "r")
    assert (fields["wandb"], fields["kind"], fields["study"]) == ("p", "isoflop", "s")
    assert logged.train_config(tmp_path / "r").wandb == "p"


def test_fit_numbers_are_the_records_laws_with_their_intervals():
    from synthetic import synthetic_runs

    from miniseries.laws import fit_laws
    from miniseries.study.stored_fits import fit_record
    from miniseries.study.wandb_fit import law_numbers

    runs = synthetic_runs([1e17, 1e18, 1e19], per_budget=5)
    record = fit_record(fit_laws(runs, n_bootstrap=50), runs, 50)
    got = law_numbers(record)
    iso, par = record["isoflop"], record["parametric"]
    for key, law in (("a", iso["n_law"]), ("b", iso["d_law"])):
        iv = law["interval"]
        assert [got[f"isoflop/{key}{s}"] for s in ("", "_lo", "_hi")] == [
            law["exponent"], iv["lo"], iv["hi"]
        ]  # fmt: skip
    assert got["isoflop/ratio_hi"] == iso["ratio_interval"]["hi"]
    assert got["parametric/b"] == par["b"] and got["parametric/a_lo"] == par["intervals"]["a"]["lo"]
    assert len(got) == 18 and all(v is not None for v in got.values())
