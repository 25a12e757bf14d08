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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """(token shards dir, tokenizer dir) for vocab 512 over ~1.5 MB of stdlib source."""
    from miniseries.data.shards import tokenize_corpus
    from miniseries.tokenizer import Tokenizer

    base = tmp_path_factory.mktemp("tinydata")
    old = os.environ.get("MINISERIES_CACHE")
    os.environ["MINISERIES_CACHE"] = str(base / "cache")
    try:
        corpus = write_corpus(base / "corpus", stdlib_documents(1_500_000))
        from miniseries.tokenizer import Tokenizer

        tok = Tokenizer.train((t for t in stdlib_documents(1_500_000)), 512)
        tok_dir = base / "tokenizer"
        tok.save(tok_dir)
        tokens = tokenize_corpus(corpus, tok, base / "tokens", val_fraction=0.05, progress=False)
    finally:
        if old is None:
            os.environ.pop("MINISERIES_CACHE", None)
        else:
            os.environ["MINISERIES_CACHE"] = old
    return tokens, tok_dir
