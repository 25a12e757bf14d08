"""BOS-aligned best-fit packing of documents into training rows, exactly resumable.

Each row holds ``seq_len + 1`` tokens and starts with ``<|bos|>`` at the start of a document (or,
with ``remainder="requeue"``, of a document's continuation, re-prefixed with BOS). To fill a row
we take the *largest* buffered document that fits in the space left; only when none fits do we
crop one (the shortest) to fill the row exactly. No padding: utilisation is 100%, and the model
never attends across a truncated context at the row's start.

What happens to a cropped document's tail: ``"drop"`` (nanochat's choice) throws it away;
``"requeue"`` puts it back in the buffer as a new piece that starts with BOS. With short rows (the
cpu preset's 128 tokens) dropping discards most of every long document, so requeue keeps the data.

The row stream is *global*: every rank builds the same sequence of rows and rank r of W keeps rows
``[r*B:(r+1)*B]`` of each batch of ``W*B`` rows, so W ranks together see exactly what one rank with
batch ``W*B`` would. Documents are drawn in an order shuffled per epoch from the seed; the loader's
whole state (epoch, position, buffer) is a few plain ints, so a resumed run continues the stream
bit for bit.
"""

import os
from bisect import bisect_right, insort

import numpy as np

from miniseries.data.shards import TokenSplit, load_split
from miniseries.errors import UserError

REMAINDERS = ("drop", "requeue")


class Packer:
    """The best-fit packing of one split, as plain python state (the part that must resume)."""

    def __init__(self, split: TokenSplit, row_len: int, buffer: int, remainder: str, order):
        if remainder not in REMAINDERS:
            raise UserError(f"remainder must be one of {REMAINDERS}, got {remainder!r}")
        if buffer < 1:
            raise UserError(f"the packing buffer must hold at least 1 document, got {buffer}")
        self.split = split
        self.offsets = split.offsets
        self.row_len = row_len
        self.buffer = buffer
        self.remainder = remainder
        self.order = order  # epoch -> array of doc indices (a fixed order or a seeded shuffle)
        self.epoch, self.pos = 0, 0
        self._perm = order(0)
        self.buf: list[tuple[int, int, int]] = []  # sorted (length, doc, start) pieces
        self.rows = self.docs = self.crops = self.dropped = 0

    # A piece (doc, start) is BOS + doc[start:] with start >= 1 (doc[0] is the doc's own BOS).
    def _piece(self, doc: int, start: int) -> tuple[int, int, int]:
        return (int(self.offsets[doc + 1] - self.offsets[doc]) - start + 1, doc, start)

    def _refill(self) -> bool:
        """Top the buffer up from the document order; False once order and buffer are empty."""
        while len(self.buf) < self.buffer and self._perm is not None:
            if self.pos >= len(self._perm):
                self.epoch, self.pos = self.epoch + 1, 0
                self._perm = self.order(self.epoch)  # None: a finite order has run out
                continue
            insort(self.buf, self._piece(int(self._perm[self.pos]), 1))
            self.pos += 1
            self.docs += 1
        return bool(self.buf)

    def next_row(self) -> list[tuple[int, int, int]] | None:
        """Plan one row: a list of (doc, start, n) segments; None when a finite order runs out."""
        plan, left = [], self.row_len
        while left > 0:
            if not self._refill():
                return None
            i = bisect_right(self.buf, (left, 1 << 62, 0)) - 1
            if i >= 0:  # the largest piece that fits
                n, doc, start = self.buf.pop(i)
                plan.append((doc, start, n))
                left -= n
                continue
            n, doc, start = self.buf.pop(0)  # nothing fits: crop the shortest
            plan.append((doc, start, left))
            self.crops += 1
            if self.remainder == "requeue":
                insort(self.buf, self._piece(doc, start + left - 1))
            else:
                self.dropped += n - left
            left = 0
        self.rows += 1
        return plan

    def fill(self, out: np.ndarray, plan: list[tuple[int, int, int]]) -> None:
        """Copy a planned row's tokens into ``out`` (length row_len)."""
        tokens, offsets, bos, p = self.split.tokens, self.offsets, self.split.bos_id, 0
        for doc, start, n in plan:
            out[p] = bos
            a = int(offsets[doc]) + start
            out[p + 1 : p + n] = tokens[a : a + n - 1]
            p += n

    def state(self) -> dict:
        return {
            "epoch": self.epoch,
            "pos": self.pos,
            "buffer": [[d, s] for _, d, s in self.buf],
            "counters": [self.rows, self.docs, self.crops, self.dropped],
        }

    def restore(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._perm = self.order(self.epoch)
        self.buf = sorted(self._piece(int(d), int(s)) for d, s in state["buffer"])
        self.rows, self.docs, self.crops, self.dropped = (int(c) for c in state["counters"])


class TrainLoader:
    """Infinite (inputs, targets) batches of B x T LongTensors for one rank."""

    def __init__(
        self,
        shard_dir: str | os.PathLike,
        batch_size: int,
        seq_len: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        buffer: int = 1000,
        remainder: str = "drop",
        split: str = "train",
    ):
        if batch_size < 1 or seq_len < 1:
            raise UserError(f"batch size and seq len must be >= 1, got {batch_size}, {seq_len}")
        if not 0 <= rank < world_size:
            raise UserError(f"rank must be in [0, world_size={world_size}), got {rank}")
        data = load_split(shard_dir, split)
        if len(data) == 0:
            raise UserError(f"the {split} split of {shard_dir} has no documents")
        self.B, self.T, self.seed = batch_size, seq_len, seed
        self.rank, self.world_size = rank, world_size
        n = self.n_docs = len(data)
        order = lambda epoch: np.random.default_rng([seed, epoch]).permutation(n)  # noqa: E731
        self.packer = Packer(data, seq_len + 1, buffer, remainder, order)
        self._rows = np.empty((batch_size, seq_len + 1), dtype=np.int64)

    def next_batch(self):
        """The next (inputs, targets): [B, T] torch.long tensors; targets = inputs shifted by 1."""
        import torch

        lo, hi = self.rank * self.B, (self.rank + 1) * self.B
        for r in range(self.world_size * self.B):
            plan = self.packer.next_row()
            if lo <= r < hi:  # every rank plans every row; only its own rows are copied
                self.packer.fill(self._rows[r - lo], plan)
        rows = torch.from_numpy(self._rows.copy())
        return rows[:, :-1], rows[:, 1:]

    def __iter__(self):
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict:
        """Plain ints and lists: torch.save-able with weights_only=True, JSON-able too."""
        return {"seed": self.seed, "n_docs": self.n_docs, "seq_len": self.T, **self.packer.state()}

    def load_state_dict(self, state: dict) -> None:
        for key, mine in (("seed", self.seed), ("n_docs", self.n_docs), ("seq_len", self.T)):
            if int(state[key]) != mine:
                raise UserError(
                    f"loader state is for {key}={state[key]}, this loader has {key}={mine};"
                    " resume with the same data, seed and sequence length"
                )
        self.packer.restore(state)

    def stats(self) -> dict:
        """Utilisation (always 1.0: rows are never padded) and how much cropping cost."""
        p = self.packer
        tokens = p.rows * p.row_len
        return {
            "rows": p.rows,
            "tokens": tokens,
            "docs": p.docs,
            "epoch": p.epoch,
            "crops": p.crops,
            "utilisation": 1.0 if tokens else 0.0,
            "crop_fraction": p.dropped / (tokens + p.dropped) if tokens else 0.0,
        }


def val_rows(
    shard_dir: str | os.PathLike,
    seq_len: int,
    max_tokens: int,
    buffer: int = 1000,
    remainder: str = "drop",
) -> np.ndarray:
    """The fixed validation packing: [R, T+1] int64 rows, R = max_tokens // T (or fewer docs).

    Val docs in their stored (hash) order, best-fit packed once; the result depends only on the
    shards, seq_len and max_tokens, never on batch size or rank (eval stripes rows across ranks).
    """
    data = load_split(shard_dir, "val")
    want = max_tokens // seq_len
    if want < 1:
        raise UserError(f"val tokens ({max_tokens}) must be at least one row of {seq_len} tokens")
    n = len(data)
    order = lambda epoch: np.arange(n) if epoch == 0 else None  # noqa: E731
    packer = Packer(data, seq_len + 1, buffer, remainder, order)
    rows = []
    while len(rows) < want and (plan := packer.next_row()) is not None:
        row = np.empty(seq_len + 1, dtype=np.int64)
        packer.fill(row, plan)
        rows.append(row)
    if not rows:
        raise UserError(f"the val split of {shard_dir} is too small for one row of {seq_len}")
    return np.stack(rows)
