"""Small real corpora for tests: random word documents and parquet corpus folders."""

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def random_docs(words: list[str], n: int, seed: int = 0, lengths=(3, 120)) -> list[str]:
    """n documents of words drawn with a fixed seed, each lengths[0]..lengths[1] words long."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(*lengths))) for _ in range(n)]


def write_corpus(path: Path, docs: list[str], per_shard: int | None = None) -> Path:
    """A corpus folder as `miniseries data build` writes one: shard_*.parquet + manifest.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    per_shard = per_shard or max(1, len(docs))
    for i in range(0, len(docs), per_shard):
        table = pa.table({"text": docs[i : i + per_shard]})
        pq.write_table(table, path / f"shard_{i // per_shard:05d}.parquet")
    (path / "manifest.json").write_text(json.dumps({"source": "test", "documents": len(docs)}))
    return path


def write_tiny_core_bundle(root: Path) -> Path:
    """A one-task CORE bundle (6 multiple-choice rows), for sweeps that evaluate CORE."""
    import yaml

    task = {"label": "mc", "dataset_uri": "x/mc.jsonl", "num_fewshot": [0]}
    task |= {"icl_task_type": "multiple_choice", "continuation_delimiter": " "}
    (root / "eval_data" / "x").mkdir(parents=True)
    (root / "core.yaml").write_text(yaml.safe_dump({"icl_tasks": [task]}))
    meta = "Eval Task,Task Category,Task Type,#shots,Random baseline,Centered Metric?\n"
    (root / "eval_meta_data.csv").write_text(meta + "mc,x,y,0,50,yes\n")
    rows = [{"query": f"def f{i}(", "choices": ["x):", "))))"], "gold": 0} for i in range(6)]
    (root / "eval_data/x/mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root
