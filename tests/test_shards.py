"""Token shards: lossless, BOS-prefixed, hash-chosen validation split, no-op reruns, damage
detection."""

import argparse
import random

import numpy as np
import pytest
from corpus_helpers import random_docs, write_corpus

from miniseries.config import CPU
from miniseries.data.shards import load_split, read_meta, tokenize_corpus
from miniseries.data.tokenizer import Tokenizer
from miniseries.errors import UserError

WORDS = "the of and to in is was for on that zebra naïve café 日本語 🙂 12345 Straße\n".split(" ")


def make_docs(n, seed=0):
    return random_docs(WORDS, n, seed)


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(make_docs(300), 300)


@pytest.fixture
def docs():
    return make_docs(400, seed=5) + ["", "the zebra", "the zebra"]  # one empty doc, one duplicate


def texts_of(split, tok):
    return [tok.decode(split.doc(i)[1:]) for i in range(len(split))]


def test_shards_are_lossless_and_bos_prefixed(tmp_path, tok, docs):
    out = tokenize_corpus(write_corpus(tmp_path / "c", docs, 50), tok, tmp_path / "t", 0.1)
    train, val = load_split(out, "train"), load_split(out, "val")
    assert train.tokens.dtype == np.uint16
    for split in (train, val):
        assert np.all(split.tokens[split.offsets[:-1]] == tok.bos_id)
        assert np.sum(split.tokens == tok.bos_id) == len(split)  # BOS only at doc starts
    tr, va = texts_of(train, tok), texts_of(val, tok)
    nonempty = [d for d in docs if d]
    assert sorted(tr + va) == sorted(nonempty)  # every doc exactly once, decoded exactly
    assert not set(tr) & set(va)  # disjoint, duplicates on the same side
    assert 30 <= len(va) <= 50  # ~10% of 402 docs
    meta = read_meta(out)
    assert meta["tokenizer_id"] == tok.id and meta["vocab_size"] == 300
    assert meta["splits"]["val"]["docs"] == len(va)
    assert meta["splits"]["train"]["tokens"] == len(train.tokens)
    assert meta["splits"]["train"]["bytes"] == sum(len(t.encode()) for t in tr)
    # the token byte lengths add up to the text bytes (what bpb divides by)
    assert tok.token_bytes[np.asarray(train.tokens)].sum() == meta["splits"]["train"]["bytes"]


def test_val_split_does_not_depend_on_sharding(tmp_path, tok, docs):
    a = tokenize_corpus(write_corpus(tmp_path / "a", docs, 50), tok, tmp_path / "ta", 0.05)
    shuffled = docs[:]
    random.Random(1).shuffle(shuffled)
    b = tokenize_corpus(write_corpus(tmp_path / "b", shuffled, 37), tok, tmp_path / "tb", 0.05)
    assert (a / "val.bin").read_bytes() == (b / "val.bin").read_bytes()
    assert np.array_equal(load_split(a, "val").offsets, load_split(b, "val").offsets)
    assert sorted(texts_of(load_split(a, "train"), tok)) == sorted(
        texts_of(load_split(b, "train"), tok)
    )


def test_rerun_is_a_noop_and_change_reruns(tmp_path, tok, docs):
    corpus = write_corpus(tmp_path / "c", docs, 50)
    out = tokenize_corpus(corpus, tok, tmp_path / "t", 0.1)
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert tokenize_corpus(corpus, tok, out, 0.1) == out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp
    tokenize_corpus(corpus, tok, out, 0.2)  # a different split is real work
    assert read_meta(out)["val_fraction"] == 0.2
    assert not [p for p in out.iterdir() if "tmp" in p.name]


def test_damaged_shards_are_user_errors(tmp_path, tok, docs):
    out = tokenize_corpus(write_corpus(tmp_path / "c", docs, 50), tok, tmp_path / "t", 0.1)
    data = (out / "train.bin").read_bytes()
    (out / "train.bin").write_bytes(data[:-2])
    with pytest.raises(UserError, match=r"train\.bin is truncated"):
        load_split(out, "train")
    (out / "train.bin").write_bytes(data)
    (out / "val_offsets.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(UserError, match=r"val_offsets\.npy"):
        load_split(out, "val")
    # a damaged directory is re-tokenized rather than trusted
    tokenize_corpus(tmp_path / "c", tok, out, 0.1)
    assert len(load_split(out, "val")) > 0
    with pytest.raises(UserError, match="no token shards"):
        load_split(tmp_path, "train")
    with pytest.raises(UserError, match="no corpus shards"):
        tokenize_corpus(tmp_path / "empty", tok, tmp_path / "x")
    with pytest.raises(UserError, match="val_fraction"):
        tokenize_corpus(tmp_path / "c", tok, tmp_path / "x", val_fraction=1.0)


def test_cli_tokenize(tmp_path, monkeypatch, capsys, tok, docs):
    from miniseries.cli.tokenize import add_tokenize

    monkeypatch.setenv("MINISERIES_CACHE", str(tmp_path / "cache"))
    corpus = write_corpus(tmp_path / "corpus", docs, 50)
    tok.save(tmp_path / "tk")
    parser = argparse.ArgumentParser()
    add_tokenize(parser.add_subparsers())
    argv = ["tokenize", "--corpus", str(corpus), "--tokenizer", str(tmp_path / "tk")]
    args = parser.parse_args(argv)
    assert args.run(args) == 0
    assert "tokenized 402 docs" in capsys.readouterr().out
    meta = read_meta(tmp_path / "cache" / "tokens" / f"corpus-{tok.id}")
    assert meta["tokenizer_dir"] == str((tmp_path / "tk").resolve())
    assert args.run(args) == 0 and "up to date" in capsys.readouterr().out
    args = parser.parse_args([*argv, "--vocab", "1024"])
    with pytest.raises(UserError, match="vocab 300"):
        args.run(args)
    args = parser.parse_args(["tokenize", "--corpus", str(corpus)])  # default: the cpu vocab
    with pytest.raises(UserError, match=rf"no tokenizer at .*corpus-{CPU.vocab_size}"):
        args.run(args)
