"""The best-fit BOS-aligned loader: row invariants, best fit, exact resume, DDP, val rows."""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from corpus_helpers import random_docs

from miniseries.data.loader import Packer, TrainLoader, val_rows
from miniseries.data.shards import TokenSplit, load_split, tokenize_corpus
from miniseries.data.tokenizer import Tokenizer
from miniseries.errors import UserError

WORDS = "the of and to in is was for on that zebra naïve café 日本語 🙂 12345 Straße\n".split(" ")
T = 32


def make_docs(n, seed=0):
    return random_docs(WORDS, n, seed, lengths=(1, 60))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    docs = make_docs(300)
    (root / "c").mkdir()
    for i in range(0, len(docs), 100):
        pq.write_table(pa.table({"text": docs[i : i + 100]}), root / "c" / f"shard_{i:05d}.parquet")
    (root / "c" / "manifest.json").write_text(json.dumps({}))
    tok = Tokenizer.train(docs, 300)
    return tokenize_corpus(root / "c", tok, root / "t", val_fraction=0.3)


def batches(loader, n):
    return [loader.next_batch() for _ in range(n)]


def doc_starts(split):
    """Each document's tokens, for checking that row segments are document prefixes."""
    return [split.doc(i) for i in range(len(split))]


@pytest.mark.parametrize("remainder", ["drop", "requeue"])
def test_rows_are_bos_aligned_full_and_shifted(shards, remainder):
    split = load_split(shards, "train")
    docs = doc_starts(split)
    loader = TrainLoader(shards, batch_size=4, seq_len=T, seed=3, buffer=20, remainder=remainder)
    for x, y in batches(loader, 60):  # > 1 epoch of this corpus
        assert x.shape == y.shape == (4, T) and x.dtype == y.dtype == torch.long
        assert torch.equal(x[:, 1:], y[:, :-1])
        rows = torch.cat([x, y[:, -1:]], dim=1).numpy()
        assert np.all(rows[:, 0] == split.bos_id)  # every row starts at a BOS
        assert rows.min() >= 0 and rows.max() < split.vocab_size
        if remainder == "drop":  # every BOS-led segment is the start of a real document
            for row in rows:
                cuts = [*np.flatnonzero(row == split.bos_id), len(row)]
                for a, b in zip(cuts[:-1], cuts[1:]):
                    seg = row[a:b]
                    assert any(np.array_equal(d[: len(seg)], seg) for d in docs if len(d) >= b - a)
    s = loader.stats()
    assert s["utilisation"] == 1.0 and s["tokens"] == 60 * 4 * (T + 1) and s["crops"] > 0
    if remainder == "drop":
        assert s["epoch"] >= 1 and s["crop_fraction"] > 0
    else:  # nothing is thrown away
        assert s["crop_fraction"] == 0


def fake_split(lengths, bos=9):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = np.ones(offsets[-1], dtype=np.uint16)
    tokens[offsets[:-1]] = bos
    return TokenSplit(tokens, offsets, bos, 10)


def test_best_fit_takes_the_largest_doc_that_fits_and_crops_only_when_none_does():
    lengths = [5, 3, 8, 2, 12, 4]
    order = lambda e: np.arange(len(lengths)) if e == 0 else None  # noqa: E731
    p = Packer(fake_split(lengths), row_len=10, buffer=100, remainder="drop", order=order)
    plans = [[(doc, n) for doc, _, n in p.next_row()] for _ in range(3)]
    assert plans[0] == [(2, 8), (3, 2)]  # 8 is the largest that fits in 10, then 2 fills it
    assert plans[1] == [(0, 5), (5, 4), (1, 1)]  # 5, 4, then nothing fits 1: crop shortest (3)
    assert plans[2] == [(4, 10)]  # only the 12 is left: cropped to the row
    assert p.next_row() is None and p.crops == 2 and p.dropped == 2 + 2
    # requeue: the cropped tail comes back as a BOS-led piece
    once = lambda e: np.arange(1) if e == 0 else None  # noqa: E731
    q = Packer(fake_split([25]), row_len=10, buffer=10, remainder="requeue", order=once)
    assert [q.next_row() for _ in range(2)] == [[(0, 1, 10)], [(0, 10, 10)]]
    assert q.buf == [(7, 0, 19)]  # BOS + the last 6 tokens of the 25 (BOS + 24 content)
    assert q.next_row() is None and q.dropped == 0


def test_small_buffer_respects_document_order():
    lengths = [4, 6, 4, 6]
    order = lambda e: np.arange(4) if e == 0 else None  # noqa: E731
    p = Packer(fake_split(lengths), row_len=10, buffer=1, remainder="drop", order=order)
    assert [[d for d, _, _ in p.next_row()] for _ in range(2)] == [[0, 1], [2, 3]]


@pytest.mark.parametrize("remainder", ["drop", "requeue"])
def test_resume_gives_exactly_the_uninterrupted_stream(shards, remainder):
    kw = dict(batch_size=3, seq_len=T, seed=7, buffer=16, remainder=remainder)
    a = TrainLoader(shards, **kw)
    batches(a, 25)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    expected = batches(a, 40)  # crosses epoch boundaries
    b = TrainLoader(shards, **kw)
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    for (xa, ya), (xb, yb) in zip(expected, batches(b, 40)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert a.stats() == b.stats()
    json.dumps(a.state_dict())  # plain python
    with pytest.raises(UserError, match="seed"):
        TrainLoader(shards, **{**kw, "seed": 8}).load_state_dict(a.state_dict())


def test_two_ranks_split_the_one_rank_stream(shards):
    kw = dict(seq_len=T, seed=1, buffer=10)
    one = TrainLoader(shards, batch_size=4, **kw)
    r0 = TrainLoader(shards, batch_size=2, rank=0, world_size=2, **kw)
    r1 = TrainLoader(shards, batch_size=2, rank=1, world_size=2, **kw)
    for _ in range(30):
        x, y = one.next_batch()
        (x0, y0), (x1, y1) = r0.next_batch(), r1.next_batch()
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
        assert not any(torch.equal(a, b) for a in x0 for b in x1)  # disjoint rows


def test_seed_determinism_and_epoch_reshuffle(shards):
    # (a buffer larger than this tiny corpus would hold every doc and hide the order)
    a, b = TrainLoader(shards, 2, T, seed=0, buffer=8), TrainLoader(shards, 2, T, seed=0, buffer=8)
    c = TrainLoader(shards, 2, T, seed=1, buffer=8)
    xa, xb, xc = (torch.cat([x for x, _ in batches(ld, 10)]) for ld in (a, b, c))
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    perm = a.packer.order
    assert not np.array_equal(perm(0), perm(1))  # each epoch is a new shuffle
    assert sorted(perm(1)) == list(range(a.n_docs))


def test_val_rows_fixed_capped_and_bos_aligned(shards):
    rows = val_rows(shards, T, max_tokens=10 * T)
    assert rows.shape == (10, T + 1) and rows.dtype == np.int64
    bos = load_split(shards, "val").bos_id
    assert np.all(rows[:, 0] == bos)
    assert np.array_equal(rows, val_rows(shards, T, max_tokens=10 * T))
    assert np.array_equal(rows[:5], val_rows(shards, T, max_tokens=5 * T + 7))  # a prefix
    many = val_rows(shards, T, max_tokens=10**9)  # runs out of val docs: fewer rows, all full
    assert 10 < len(many) < 10**9 // T
    with pytest.raises(UserError, match="at least one row"):
        val_rows(shards, T, max_tokens=T - 1)


def test_bad_arguments(shards):
    with pytest.raises(UserError, match="rank"):
        TrainLoader(shards, 2, T, rank=2, world_size=2)
    with pytest.raises(UserError, match="remainder"):
        TrainLoader(shards, 2, T, remainder="pad")
