"""CORE evaluator: known answers from a scripted model on a hand-made bundle, prompt rendering,
few-shot sampling, left-cropping, batching invariance and DDP striping."""

import json
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from miniseries.evaluate import core
from miniseries.evaluate.bundle import CORE_LABELS, load_bundle


class CharTokenizer:
    """One token per character (printable ASCII + newline); BOS is 0."""

    bos_id = 0
    vocab_size = 128

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(chr(i) for i in ids if i)


class FirstTokenModel:
    """Scripted: at every position it predicts the sequence's first real token (after BOS).

    So a continuation made only of that character has ~zero loss and is reproduced greedily;
    every other character costs ~10 nats. Answers are known by construction.
    """

    def __init__(self, vocab: int = 128, max_seq_len: int | None = None):
        self.vocab, self.max_seq_len, self.calls = vocab, max_seq_len, 0

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        B, T = idx.shape
        logits = torch.zeros(B, T, self.vocab)
        logits[torch.arange(B), :, idx[:, 1]] = 10.0
        return logits


def write_bundle(root: Path, tasks: list[dict], rows: dict[str, list[dict]], baselines: dict):
    """A bundle in the real layout: core.yaml, eval_meta_data.csv, eval_data/<uri>."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    (root / "core.yaml").write_text(yaml.safe_dump({"icl_tasks": tasks}))
    lines = ["Eval Task,Task Category,Task Type,#shots,Random baseline,Centered Metric?"]
    for label, rb in baselines.items():
        lines.append(f"{label},x,y,0,{rb},yes")
    (root / "eval_meta_data.csv").write_text("\n".join(lines) + "\n")
    for t in tasks:
        path = root / "eval_data" / t["dataset_uri"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows[t["label"]]))
    return root


# MC: every query starts with "a", so the model favours choices made of "a"s.
# Gold is the all-"a" choice in 3 of 4 examples -> accuracy 3/4.
MC_ROWS = [
    {"query": "a1?", "choices": ["aaaa", "bbbb"], "gold": 0},
    {"query": "a2?", "choices": ["bcbc", "aaab", "cccc"], "gold": 1},
    {"query": "a3?", "choices": ["zz", "aa"], "gold": 1},
    {"query": "a4?", "choices": ["aaaa", "bbbb"], "gold": 1},  # model picks 0: wrong
]
# Schema: the context option's first letter is what the model repeats; the shared continuation
# is "ccc", so the option starting with "c" wins. Correct in 1 of 2 -> 1/2.
SCHEMA_ROWS = [
    {"context_options": ["cat sat", "dog sat"], "continuation": "ccc", "gold": 0},
    {"context_options": ["cow ran", "pig ran"], "continuation": "ccc", "gold": 1},
]
# LM: contexts start with "q"; correct iff the continuation is only "q"s -> 2 of 5.
LM_ROWS = [
    {"context": "q one", "continuation": "qq"},
    {"context": "q two", "continuation": "qqq"},
    {"context": "q three", "continuation": "qqx"},
    {"context": "q four", "continuation": "x"},
    {"context": "q five", "continuation": "aq"},
]
TASKS = [
    {
        "label": "mc_task",
        "dataset_uri": "x/mc.jsonl",
        "num_fewshot": [2],
        "icl_task_type": "multiple_choice",
        "continuation_delimiter": "\nAnswer: ",
    },
    {
        "label": "schema_task",
        "dataset_uri": "x/schema.jsonl",
        "num_fewshot": [0],
        "icl_task_type": "schema",
    },
    {
        "label": "lm_task",
        "dataset_uri": "y/lm.jsonl",
        "num_fewshot": [3],
        "icl_task_type": "language_modeling",
        "continuation_delimiter": "",  # with " " the space would be a scored character token
    },
]
BASELINES = {"mc_task": 25, "schema_task": 50, "lm_task": 0}


@pytest.fixture
def tiny_bundle(tmp_path):
    rows = {"mc_task": MC_ROWS, "schema_task": SCHEMA_ROWS, "lm_task": LM_ROWS}
    return write_bundle(tmp_path / "bundle", TASKS, rows, BASELINES)


def test_scripted_model_known_accuracies(tiny_bundle):
    res = core.evaluate_core(FirstTokenModel(), CharTokenizer(), tiny_bundle, progress=False)
    acc = {k: v.accuracy for k, v in res.tasks.items()}
    assert acc == {"mc_task": 3 / 4, "schema_task": 1 / 2, "lm_task": 2 / 5}
    cen = {k: v.centered for k, v in res.tasks.items()}
    assert cen["mc_task"] == pytest.approx((0.75 - 0.25) / 0.75)
    assert cen["schema_task"] == pytest.approx(0.0)
    assert cen["lm_task"] == pytest.approx(0.4)
    assert res.core == pytest.approx(((0.5 / 0.75) + 0.0 + 0.4) / 3)
    assert [r.n for r in res.tasks.values()] == [4, 2, 5]
    assert res.label == "CORE-3"  # never "CORE" with tasks missing
    assert res.missing == list(CORE_LABELS)
    assert res.describe().startswith("CORE-3 = ")
    assert "missing: hellaswag_zeroshot" in res.describe()
    assert res.examples == 11 and res.examples_per_s > 0


def test_max_per_task_and_task_subset(tiny_bundle):
    res = core.evaluate_core(
        FirstTokenModel(),
        CharTokenizer(),
        tiny_bundle,
        max_per_task=2,
        tasks=["lm_task"],
        progress=False,
    )
    assert list(res.tasks) == ["lm_task"] and res.tasks["lm_task"].n == 2
    # the 2 examples are the first two after the fixed shuffle
    shuffled = list(LM_ROWS)
    random.Random(core.SHUFFLE_SEED).shuffle(shuffled)
    expected = sum(set(r["continuation"]) == {"q"} for r in shuffled[:2]) / 2
    assert res.tasks["lm_task"].accuracy == expected
    assert "[at most 2 examples per task]" in res.describe()
    with pytest.raises(core.UserError, match="unknown or missing task"):
        core.evaluate_core(FirstTokenModel(), CharTokenizer(), tiny_bundle, tasks=["nope"])


def test_label_is_core_only_with_all_22():
    assert core.core_label(CORE_LABELS) == "CORE"
    assert core.core_label(CORE_LABELS[:20]) == "CORE-20"


def test_render_matches_mosaicml_format():
    mc = {"query": "Q", "choices": ["a", "b"], "gold": 1}
    shots = [{"query": "X", "choices": ["yes", "no"], "gold": 0}]
    assert core.render_mc(mc, " ", shots) == ["X yes\n\nQ a", "X yes\n\nQ b"]
    sc = {"context_options": ["c1", "c2"], "continuation": "end", "gold": 0}
    sshots = [{"context_options": ["f1", "f2"], "continuation": "fc", "gold": 1}]
    assert core.render_schema(sc, " ", sshots) == ["f2 fc\n\nc1 end", "f2 fc\n\nc2 end"]
    lm = {"context": " ctx  ", "continuation": "cont"}
    lshots = [{"context": "a ", "continuation": "b"}]
    assert core.render_lm(lm, "\nAnswer: ", lshots) == (
        "a\nAnswer: b\n\nctx\nAnswer:",
        "a\nAnswer: b\n\nctx\nAnswer: cont",
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 300), st.integers(0, 12), st.data())
def test_fewshot_never_contains_the_example(n, k, data):
    i = data.draw(st.integers(0, n - 1))
    got = core.fewshot_indices(i, n, k)
    assert i not in got
    assert len(got) == len(set(got)) == min(k, n - 1)
    assert all(0 <= j < n for j in got)
    # identical to nanochat's explicit list (so numbers are comparable with its runs)
    ref = (
        random.Random(1234 + i).sample([j for j in range(n) if j != i], min(k, n - 1)) if k else []
    )
    assert got == ref


def test_left_crop_keeps_the_continuation():
    tok = CharTokenizer()
    task = core.Task("t", "u", "language_modeling", 0, " ", 0.0)
    item = {"context": "x" * 200, "continuation": "the answer"}
    ((tokens, start, end),) = core.example_sequences(task, item, [], tok, max_len=32)
    assert len(tokens) == 32 and end == 32
    assert tok.decode(tokens[start:end]) == " the answer"  # the delimiter joins it (nanochat)
    mc = core.Task("m", "u", "multiple_choice", 0, " ", 0.25)
    item = {"query": "y" * 100, "choices": ["red", "green!"], "gold": 0}
    seqs = core.example_sequences(mc, item, [], tok, max_len=16)
    assert [tok.decode(t[s:e]) for t, s, e in seqs] == ["red", "green!"]
    assert all(len(t) <= 16 for t, _, _ in seqs)
    # a continuation longer than the window keeps its last tokens, never position 0
    item = {"context": "c", "continuation": "z" * 50}
    ((tokens, start, end),) = core.example_sequences(task, item, [], tok, max_len=20)
    assert start == 1 and end == 20 and tokens[start:end] == [ord("z")] * 19


def test_crop_changes_the_scored_model_input(tiny_bundle):
    """With a short window the first token seen is no longer the prompt's first character."""
    full = core.evaluate_core(FirstTokenModel(), CharTokenizer(), tiny_bundle, progress=False)
    short = core.evaluate_core(
        FirstTokenModel(max_seq_len=6), CharTokenizer(), tiny_bundle, progress=False
    )
    assert full.tasks["mc_task"].accuracy == 0.75
    assert short.tasks["mc_task"].accuracy != full.tasks["mc_task"].accuracy


def _tiny_gpt():
    from miniseries.config import CPU, model_config
    from miniseries.train.model import GPT

    torch.manual_seed(0)
    model = GPT(model_config(1, CPU))
    for p in model.parameters():  # break the zero-init symmetry so options score differently
        torch.nn.init.normal_(p, std=0.5)
    return model


def test_real_gpt_batching_does_not_change_scores(tiny_bundle):
    model = _tiny_gpt()
    bundle = load_bundle(tiny_bundle)
    tok = CharTokenizer()
    for task in bundle.tasks:
        data = core.load_task_data(bundle, task)
        args = (model, model.cfg.seq_len, tok, task, data, range(len(data)))
        one = core.evaluate_task(*args, batch_tokens=1, max_rows=1)
        many = core.evaluate_task(*args, batch_tokens=1 << 16)
        assert one == many
    res = core.evaluate_core(model, tok, tiny_bundle, progress=False)
    assert res.label == "CORE-3" and all(0 <= r.accuracy <= 1 for r in res.tasks.values())


def test_evaluate_run_writes_core_json(tiny_bundle, tmp_path):
    res = core.evaluate_run(
        tmp_path, FirstTokenModel(), CharTokenizer(), bundle=tiny_bundle, progress=False
    )
    saved = json.loads((tmp_path / "core.json").read_text())
    assert saved["core"] == pytest.approx(res.core) and saved["label"] == "CORE-3"
    assert saved["tasks"]["mc_task"]["accuracy"] == 0.75


def _ddp_worker(rank, world, bundle, port, out):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        res = core.evaluate_core(FirstTokenModel(), CharTokenizer(), bundle, progress=False)
        if rank == 0:
            Path(out).write_text(json.dumps(res.to_dict()))
    finally:
        dist.destroy_process_group()


def test_ddp_striping_matches_single_process(tiny_bundle, tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp.json"
    mp.spawn(_ddp_worker, args=(2, str(tiny_bundle), port, str(out)), nprocs=2, join=True)
    got = json.loads(out.read_text())
    single = core.evaluate_core(FirstTokenModel(), CharTokenizer(), tiny_bundle, progress=False)
    assert {k: v["n"] for k, v in got["tasks"].items()} == {
        "mc_task": 4,
        "schema_task": 2,
        "lm_task": 5,
    }
    assert got["core"] == pytest.approx(single.core)


def _cli(argv):
    import argparse

    from miniseries.cli import core as cli_core

    parser = argparse.ArgumentParser()
    cli_core.add_parser(parser.add_subparsers())
    args = parser.parse_args(["core", *argv])
    return args.run(args)


def test_cli_user_errors(tiny_bundle, tmp_path):
    with pytest.raises(core.UserError, match="either a RUN_DIR or --hf"):
        _cli(["--bundle", str(tiny_bundle)])
    with pytest.raises(core.UserError, match="--max-per-task must be at least 1"):
        _cli([str(tmp_path), "--max-per-task", "0"])
    with pytest.raises(core.UserError, match="run folder .* not found"):
        _cli([str(tmp_path / "nope"), "--bundle", str(tiny_bundle), "--device", "cpu"])
    with pytest.raises(core.UserError, match="bundle 'nowhere' not found"):
        _cli([str(tmp_path), "--bundle", "nowhere"])


def test_cli_run_dir_without_checkpoint(tiny_bundle, tmp_path):
    with pytest.raises(core.UserError, match="not a finished run folder"):
        _cli([str(tmp_path), "--bundle", str(tiny_bundle), "--device", "cpu"])
