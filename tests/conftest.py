"""Shared fixtures: a tiny real corpus, tokenizer and token shards made from Python's own source.

Python's standard library (docstrings and comments are English prose, code is text) is on every
machine that runs these tests, so the fixture needs no network and no package downloads.
"""

import os
import sysconfig
from pathlib import Path

import pytest
from corpus_helpers import write_corpus  # noqa: F401 (tests import it from here)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets a private data cache, so nothing reads or writes ~/.cache/miniseries and
    no test sees what another left behind."""
    cache = tmp_path / "_cache"
    monkeypatch.setenv("MINISERIES_CACHE", str(cache))
    monkeypatch.setenv("MINISERIES_NO_PEAK", "1")  # don't spend a second measuring CPU peaks
    monkeypatch.delenv("MINISERIES_WANDB", raising=False)  # a developer's W&B default stays out


def stdlib_documents(limit_bytes: int = 3_000_000) -> list[str]:
    """Source files of the stdlib, one document per file, in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if len(text) < 500:
            continue
        docs.append(text[:20_000])
        total += len(docs[-1])
        if total >= limit_bytes:
            break
    return docs


def _tokenized(base, documents: list[str], vocab: int = 512):
    """(token shards dir, tokenizer dir) for ``vocab`` over ``documents``, cached under base."""
    from miniseries.data.shards import tokenize_corpus
    from miniseries.data.tokenizer import Tokenizer

    old = os.environ.get("MINISERIES_CACHE")
    os.environ["MINISERIES_CACHE"] = str(base / "cache")
    try:
        corpus = write_corpus(base / "corpus", documents)
        tok = Tokenizer.train(iter(documents), vocab)
        tok_dir = base / "tokenizer"
        tok.save(tok_dir)
        tokens = tokenize_corpus(corpus, tok, base / "tokens", val_fraction=0.05, progress=False)
    finally:
        if old is None:
            os.environ.pop("MINISERIES_CACHE", None)
        else:
            os.environ["MINISERIES_CACHE"] = old
    return tokens, tok_dir


@pytest.fixture(scope="session")
def gpu_vocab_data(tmp_path_factory):
    """(token shards dir, tokenizer dir) for the gpu preset's vocab, 32,768, over ~3 MB of stdlib
    source (rustbpe trains it in about a second)."""
    return _tokenized(tmp_path_factory.mktemp("gpuvocab"), stdlib_documents(3_000_000), 32768)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """(token shards dir, tokenizer dir) for vocab 512 over ~1.5 MB of stdlib source."""
    return _tokenized(tmp_path_factory.mktemp("tinydata"), stdlib_documents(1_500_000))


def markov_documents(n_docs: int = 3000, n_words: int = 400, successors: int = 4) -> list[str]:
    """Text from a word-level Markov chain: a fixed lexicon of random letter strings, each word
    followed by one of its own few successors. Learning it is memorising a transition table, so a
    small model stops improving after a few hundred steps while a bigger one goes on: an isoFLOP
    optimum shows up inside depths 1-4 at budgets of ~4e10 FLOPs. (On Python source every tiny
    run is still limited by its step count there, and the smallest model wins every budget.)"""
    import random

    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    lexicon = {
        "".join(rng.choice(letters) for _ in range(rng.randint(2, 6))) for _ in range(n_words)
    }
    words = sorted(lexicon)
    follow = {w: rng.sample(words, successors) for w in words}
    docs = []
    for _ in range(n_docs):
        word = rng.choice(words)
        out = [word]
        for _ in range(rng.randint(100, 400)):
            word = rng.choice(follow[word])
            out.append(word)
        docs.append(" ".join(out) + ".")
    return docs


@pytest.fixture(scope="session")
def markov_data(tmp_path_factory):
    """(token shards dir, tokenizer dir) for vocab 512 over ~3.8 MB of `markov_documents`."""
    return _tokenized(tmp_path_factory.mktemp("markovdata"), markov_documents())
