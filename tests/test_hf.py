"""HF adapter: a tiny random GPT-2 and an offline-trained tokenizer, checked against a plain
per-option reference that uses transformers' own loss (labels=...)."""

import argparse
import json

import pytest
import torch
import transformers  # a dev dependency: missing, this test fails rather than skips
from test_core_eval import BASELINES, LM_ROWS, MC_ROWS, SCHEMA_ROWS, TASKS, write_bundle

from miniseries.evaluate import core
from miniseries.evaluate.hf import HFModel, HFTokenizer, load_hf

TEXT = [
    "a1? aaaa bbbb bcbc aaab cccc zz aa",
    "cat sat dog sat cow ran pig ran ccc",
    "q one qq q two qqq q three qqx q four x q five aq",
    "Answer: the quick brown fox",
]


def _tiny(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        TEXT * 20,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=len(tok),
        n_positions=64,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = transformers.GPT2LMHeadModel(cfg).eval()
    folder = tmp_path / "tiny-gpt2"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_bundle(tmp_path):
    rows = {"mc_task": MC_ROWS, "schema_task": SCHEMA_ROWS, "lm_task": LM_ROWS}
    return write_bundle(tmp_path / "bundle", TASKS, rows, BASELINES)


def _reference_accuracy(model, tok, bundle_dir, label):
    """Unbatched: each option through model(labels=...) with only the continuation labelled."""
    from miniseries.evaluate.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    task = bundle.task(label)
    data = core.load_task_data(bundle, task)
    correct = 0
    for i, item in enumerate(data):
        shots = [data[j] for j in core.fewshot_indices(i, len(data), task.num_fewshot)]
        seqs = core.example_sequences(task, item, shots, tok, model.max_seq_len)
        scores, hits = [], []
        for tokens, start, end in seqs:
            ids = torch.tensor([tokens])
            labels = torch.full_like(ids, -100)
            labels[0, start:end] = ids[0, start:end]
            out = model.model(input_ids=ids, labels=labels)
            scores.append(out.loss.item())
            pred = out.logits[0, start - 1 : end - 1].argmax(-1)
            hits.append(bool((pred == ids[0, start:end]).all()))
        if task.task_type == "language_modeling":
            correct += hits[0]
        else:
            correct += min(range(len(scores)), key=scores.__getitem__) == item["gold"]
    return correct / len(data)


def test_hf_model_matches_reference(tmp_path, tiny_bundle):
    model, tok = load_hf(str(_tiny(tmp_path)))
    assert isinstance(model, HFModel) and isinstance(tok, HFTokenizer)
    assert model.max_seq_len == 64 and tok.bos_id == tok.tok.bos_token_id
    assert tok.decode(tok.encode("q one qq")) == "q one qq"
    res = core.evaluate_core(model, tok, tiny_bundle, progress=False)
    assert res.label == "CORE-3"
    for label, r in res.tasks.items():
        assert r.accuracy == pytest.approx(_reference_accuracy(model, tok, tiny_bundle, label))


def test_cli_hf_json(tmp_path, tiny_bundle, capsys):
    from miniseries.cli import core as cli_core

    folder = _tiny(tmp_path)
    parser = argparse.ArgumentParser()
    cli_core.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "core",
            "--hf",
            str(folder),
            "--bundle",
            str(tiny_bundle),
            "--json",
            "--device",
            "cpu",
            "--max-per-task",
            "3",
        ]
    )
    assert args.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["label"] == "CORE-3" and out["max_per_task"] == 3
    assert {k: v["n"] for k, v in out["tasks"].items()} == {
        "mc_task": 3,
        "schema_task": 2,
        "lm_task": 3,
    }
    assert out["description"].startswith("CORE-3 = ")
