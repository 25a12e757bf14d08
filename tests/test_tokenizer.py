"""The BPE tokenizer: exact round trips, byte accounting for bpb, save/load, the CLI."""

import argparse

import numpy as np
import pytest
from corpus_helpers import random_docs, write_corpus
from hypothesis import given, settings
from hypothesis import strategies as st

from miniseries.data.tokenizer import BOS, Tokenizer, _capped, check_vocab
from miniseries.errors import UserError

WORDS = (
    "the of and to in is was for on that with as by at from his her it an were are which this be "
    "zebra naïve café 日本語 🙂 x=1; 12345 3.14159 Straße ελληνικά\n"
).split(" ")


def make_docs(n, seed=0):
    return random_docs(WORDS, n, seed)


_TOK = {}


def tok() -> Tokenizer:
    if "t" not in _TOK:
        _TOK["t"] = Tokenizer.train(make_docs(300), 300)
    return _TOK["t"]


def test_vocab_layout_and_specials():
    t = tok()
    assert t.vocab_size == 300 and t.bos_id == 299 and len(t.ranks) == 299
    assert t.token_bytes.dtype == np.int32 and t.token_bytes.shape == (300,)
    assert t.token_bytes[t.bos_id] == 0
    assert t.token_bytes[:256].tolist() == [1] * 256  # the single bytes come first
    assert t.token_bytes[256:299].min() >= 2  # merges are multi-byte
    assert t.encode("a", prepend_bos=True)[0] == t.bos_id
    # a literal "<|bos|>" in text is plain bytes, never the special id
    assert t.bos_id not in t.encode(f"x {BOS} y") and t.decode(t.encode(BOS)) == BOS


def test_bpe_compresses_the_training_text():
    t, text = tok(), " ".join(make_docs(20, seed=1))
    assert len(t.encode(text)) < 0.7 * len(text.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_roundtrip_arbitrary_unicode(s):
    t = tok()
    ids = t.encode(s)
    assert t.decode(ids) == s
    assert int(t.token_bytes[ids].sum()) == len(s.encode("utf-8"))  # what bpb relies on


def test_encode_batch_matches_encode():
    t, docs = tok(), make_docs(40, seed=2)
    assert t.encode_batch(docs, num_threads=2) == [t.encode(d) for d in docs]


def test_save_load_roundtrip(tmp_path):
    t = tok()
    path = t.save(tmp_path / "tk")
    assert path.name == "tokenizer.json" and not list((tmp_path / "tk").glob(".*tmp*"))
    u = Tokenizer.load(tmp_path / "tk", 300)
    assert u.id == t.id and u.ranks == t.ranks and u.pattern == t.pattern
    s = "the zebra café 🙂 12345"
    assert u.encode(s) == t.encode(s)
    assert np.array_equal(u.token_bytes, t.token_bytes)


def test_load_errors_name_the_file(tmp_path):
    t = tok()
    t.save(tmp_path)
    with pytest.raises(UserError, match=r"tokenizer\.json.*vocab 300.*1024"):
        Tokenizer.load(tmp_path, 1024)
    with pytest.raises(UserError, match="no tokenizer at"):
        Tokenizer.load(tmp_path / "missing")
    (tmp_path / "tokenizer.json").write_text('{"format": "miniseries-bpe-1", "ranks": [1]}')
    with pytest.raises(UserError, match=r"corrupt tokenizer file .*tokenizer\.json"):
        Tokenizer.load(tmp_path)


def test_bad_vocab_sizes():
    with pytest.raises(UserError, match="from 257"):
        check_vocab(256)
    with pytest.raises(UserError, match="smaller --vocab"):
        Tokenizer.train(["ab ab ab"], 400)


def test_max_chars_caps_training_text():
    texts = ["abcde"] * 10
    assert "".join(_capped(texts, 12)) == "abcde" * 2 + "ab"
    assert "".join(_capped(texts, None)) == "abcde" * 10
    # fewer chars -> a different (weaker) tokenizer
    a = Tokenizer.train(make_docs(300), 300, max_chars=2000)
    assert a.ranks != tok().ranks


def test_cli_train(tmp_path, monkeypatch, capsys):
    from miniseries.cli import tokenizer as cli

    monkeypatch.setenv("MINISERIES_CACHE", str(tmp_path / "cache"))
    corpus = write_corpus(tmp_path / "corpus", make_docs(200), 50)
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["tokenizer", "train", "--corpus", str(corpus), "--vocab", "300"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "vocab 300" in out and "bytes/token" in out
    saved = tmp_path / "cache" / "tokenizer" / "corpus-300" / "tokenizer.json"
    assert saved.is_file()
    assert args.run(args) == 0 and "already" in capsys.readouterr().out
    args = parser.parse_args(["tokenizer", "train", "--corpus", str(tmp_path / "nope")])
    with pytest.raises(UserError, match="no corpus shards"):
        args.run(args)
