"""Bundles: safe zip extraction, the online path (over a file:// URL), reading and validation."""

import io
import json
import stat
import zipfile

import pytest
from test_core_eval import BASELINES, LM_ROWS, MC_ROWS, SCHEMA_ROWS, TASKS, write_bundle

from miniseries.errors import UserError
from miniseries.evaluate import bundle as b
from miniseries.evaluate import online_bundle as online
from miniseries.evaluate.get_bundle import resolve_bundle


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.mark.parametrize(
    "entry, why",
    [
        (("../evil.txt", b"x"), "climbs out"),
        (("eval_bundle/../../evil.txt", b"x"), "climbs out"),
        (("/etc/evil.txt", b"x"), "absolute"),
        (("C:/evil.txt", b"x"), "absolute"),
        (_symlink("eval_bundle/link", "/etc/passwd"), "symbolic link"),
    ],
)
def test_unsafe_entries_are_refused(tmp_path, entry, why):
    zpath = tmp_path / "bad.zip"
    zpath.write_bytes(_zip([("eval_bundle/core.yaml", b"icl_tasks: []\n"), entry]))
    name = entry[0] if isinstance(entry[0], str) else entry[0].filename
    with pytest.raises(UserError, match=why) as err:
        online.safe_extract(zpath, tmp_path / "out")
    assert repr(name) in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing extracted, not even the safe entry
    assert not (tmp_path / "evil.txt").exists()


def test_online_bundle_downloads_extracts_and_reads(tmp_path, monkeypatch):
    src = write_bundle(
        tmp_path / "src" / "eval_bundle",
        TASKS,
        {"mc_task": MC_ROWS, "schema_task": SCHEMA_ROWS, "lm_task": LM_ROWS},
        BASELINES,
    )
    entries = [
        (f"eval_bundle/{p.relative_to(src).as_posix()}", p.read_bytes())
        for p in sorted(src.rglob("*"))
        if p.is_file()
    ]
    zpath = tmp_path / "eval_bundle.zip"
    zpath.write_bytes(_zip(entries))
    root = online.online_bundle(zpath.as_uri(), log=lambda *a: None)
    assert root.name == "eval_bundle" and (root / "core.yaml").exists()
    bundle = b.load_bundle(root)
    assert [t.label for t in bundle.tasks] == ["mc_task", "schema_task", "lm_task"]
    assert bundle.task("mc_task").random_baseline == 0.25  # the CSV's percent as a fraction
    assert (
        bundle.task("mc_task").delimiter == "\nAnswer: " and bundle.task("mc_task").num_fewshot == 2
    )
    assert bundle.missing == list(b.CORE_LABELS)
    zpath.unlink()  # cached: no second download
    assert online.online_bundle(zpath.as_uri(), log=lambda *a: None) == root


def test_one_resolver_for_every_bundle_name(tmp_path):
    """A folder is used as is; without ``build`` nothing is fetched and the error says how."""
    folder = tmp_path / "mine"
    folder.mkdir()
    assert resolve_bundle(folder, build=False) == folder == resolve_bundle(str(folder))
    with pytest.raises(UserError, match="not found: use online, offline or a bundle folder"):
        resolve_bundle(tmp_path / "nope")
    with pytest.raises(UserError, match="core build-bundle"):
        resolve_bundle("offline", build=False)
    with pytest.raises(UserError, match="--bundle online"):
        resolve_bundle("online", build=False)
    rows = {"mc_task": MC_ROWS, "schema_task": SCHEMA_ROWS, "lm_task": LM_ROWS}
    src = write_bundle(tmp_path / "src" / "eval_bundle", TASKS, rows, BASELINES)
    zpath = tmp_path / "eval_bundle.zip"
    files = [p for p in sorted(src.rglob("*")) if p.is_file()]
    entries = [(f"eval_bundle/{p.relative_to(src).as_posix()}", p.read_bytes()) for p in files]
    zpath.write_bytes(_zip(entries))
    root = resolve_bundle("online", zpath.as_uri(), log=lambda *a: None)
    assert resolve_bundle("online", build=False) == root == online.cached_online_bundle()


def test_download_failure_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--bundle offline"):
        online.download((tmp_path / "nope.zip").as_uri(), tmp_path / "x.zip")
    assert not (tmp_path / "x.zip.part").exists()


def test_missing_data_file_counts_as_missing_task(tmp_path):
    root = write_bundle(
        tmp_path / "bd",
        TASKS,
        {"mc_task": MC_ROWS, "schema_task": SCHEMA_ROWS, "lm_task": LM_ROWS},
        BASELINES,
    )
    (root / "eval_data" / "y" / "lm.jsonl").unlink()
    bundle = b.load_bundle(root)
    assert [t.label for t in bundle.tasks] == ["mc_task", "schema_task"]
    with pytest.raises(UserError, match="not in the bundle"):
        bundle.task("lm_task")


def test_bad_bundles_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not a CORE bundle"):
        b.load_bundle(tmp_path)
    root = write_bundle(
        tmp_path / "bd",
        TASKS,
        {"mc_task": MC_ROWS, "schema_task": SCHEMA_ROWS, "lm_task": LM_ROWS},
        {"mc_task": 25, "schema_task": 50},
    )
    with pytest.raises(UserError, match="no 'Random baseline' for task 'lm_task'"):
        b.load_bundle(root)
    root = write_bundle(
        tmp_path / "bd2",
        TASKS,
        {"mc_task": [{"query": "q", "gold": 0}], "schema_task": SCHEMA_ROWS, "lm_task": LM_ROWS},
        BASELINES,
    )
    bundle = b.load_bundle(root)
    with pytest.raises(UserError, match=r"mc.jsonl:1: a multiple_choice row needs choices"):
        b.read_task_rows(bundle, bundle.task("mc_task"))
    (root / "eval_data" / "x" / "mc.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match="not valid JSON"):
        b.read_task_rows(bundle, bundle.task("mc_task"))


def test_core_task_table_matches_spec():
    assert len(b.CORE_TASKS) == 22 and len(set(b.CORE_LABELS)) == 22
    rb = {t.label: t.random_baseline for t in b.CORE_TASKS}
    assert rb["boolq"] == 0.62 and rb["bigbench_language_identification"] == pytest.approx(0.091)
    shots = {t.label: t.num_fewshot for t in b.CORE_TASKS}
    assert shots["agi_eval_lsat_ar"] == 3 and shots["hellaswag_zeroshot"] == 0
    kinds = [t.task_type for t in b.CORE_TASKS]
    assert kinds.count("schema") == 2 and kinds.count("language_modeling") == 9
    assert json.loads(json.dumps([t.label for t in b.CORE_TASKS]))[0] == "hellaswag_zeroshot"
