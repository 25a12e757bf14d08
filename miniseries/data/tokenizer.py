"""Byte-level BPE: trained with rustbpe (fast, parallel), run with tiktoken (fast encode).

The vocabulary size given includes the one special token, ``<|bos|>``, which takes the last id
(``vocab_size - 1``); ids ``0..vocab_size-2`` are the 256 single bytes plus the learned merges.
The split pattern is nanochat's variant of GPT-4's: numbers split into runs of at most *two*
digits (``\\p{N}{1,2}``, GPT-4 uses ``{1,3}``), which wastes fewer tokens on numbers when the
vocabulary is small.

On disk a tokenizer is one JSON file, ``tokenizer.json``: the pattern, the specials, and every
token's bytes (base64) in rank order. No pickle, readable anywhere. A tokenizer's *id* is a hash of
that content, so token shards can name the exact tokenizer that made them.
"""

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import tiktoken

from miniseries.errors import UserError
from miniseries.paths import atomic_write_text, cache_dir

SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)
BOS = "<|bos|>"
FILE_NAME = "tokenizer.json"
FORMAT = "miniseries-bpe-1"
MIN_VOCAB = 257  # 256 byte tokens + <|bos|>
MAX_VOCAB = 2**31 - 1


class Tokenizer:
    """A trained BPE: ``encode``/``decode`` text, know each token's byte length."""

    def __init__(self, ranks: list[bytes], pattern: str = SPLIT_PATTERN):
        self.ranks = list(ranks)  # token id -> its bytes, for ids 0..vocab_size-2
        self.pattern = pattern
        self.bos_id = len(self.ranks)
        self.vocab_size = len(self.ranks) + 1
        self.directory: Path | None = None  # where it was loaded from / saved to, if anywhere
        self.id = hashlib.sha256(self._payload().encode("utf-8")).hexdigest()[:12]
        self.enc = tiktoken.Encoding(
            name=f"miniseries-{self.id}",
            pat_str=pattern,
            mergeable_ranks={b: i for i, b in enumerate(self.ranks)},
            special_tokens={BOS: self.bos_id},
        )
        lengths = [len(b) for b in self.ranks] + [0]  # specials have no bytes
        self.token_bytes = np.asarray(lengths, dtype=np.int32)

    # -- encode / decode ----------------------------------------------------------------------

    def encode(self, text: str, prepend_bos: bool = False) -> list[int]:
        """Text -> ids. A literal "<|bos|>" in the text is encoded as ordinary bytes."""
        ids = self.enc.encode_ordinary(text)
        return [self.bos_id, *ids] if prepend_bos else ids

    def encode_batch(self, texts: list[str], num_threads: int = 2) -> list[list[int]]:
        """Many texts at once; tiktoken drops the GIL, so threads use all the cores."""
        return self.enc.encode_ordinary_batch(list(texts), num_threads=max(1, num_threads))

    def decode(self, ids: Iterable[int]) -> str:
        return self.enc.decode([int(i) for i in ids])

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, id={self.id!r})"

    # -- train / save / load ------------------------------------------------------------------

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, max_chars: int | None = None
    ) -> "Tokenizer":
        """Learn ``vocab_size - 1`` byte tokens + merges from the texts (at most ``max_chars``)."""
        import rustbpe

        check_vocab(vocab_size)
        bpe = rustbpe.Tokenizer()
        bpe.train_from_iterator(_capped(texts, max_chars), vocab_size - 1, pattern=SPLIT_PATTERN)
        pairs = sorted(bpe.get_mergeable_ranks(), key=lambda kv: kv[1])
        ranks = [bytes(b) for b, _ in pairs]
        if [r for _, r in pairs] != list(range(len(pairs))):
            raise RuntimeError("rustbpe returned non-contiguous ranks")
        if len(ranks) != vocab_size - 1:
            raise UserError(
                f"the training text only supports {len(ranks) + 1} tokens, not vocab {vocab_size};"
                " use a smaller --vocab or a larger corpus"
            )
        return cls(ranks, bpe.get_pattern())

    def _payload(self) -> str:
        doc = {
            "format": FORMAT,
            "vocab_size": self.vocab_size,
            "pattern": self.pattern,
            "special_tokens": {BOS: self.bos_id},
            "ranks": [base64.b64encode(b).decode("ascii") for b in self.ranks],
        }
        return json.dumps(doc, indent=0)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/tokenizer.json`` atomically; returns its path."""
        path = Path(directory) / FILE_NAME
        atomic_write_text(path, self._payload())
        self.directory = Path(directory)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, vocab_size: int | None = None) -> "Tokenizer":
        """Read a saved tokenizer; if ``vocab_size`` is given it must match."""
        path = Path(directory) / FILE_NAME
        if not path.is_file():
            raise UserError(
                f"no tokenizer at {path}; train one with"
                f" `miniseries tokenizer train --out {directory}`"
            )
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            ranks = [base64.b64decode(s) for s in doc["ranks"]]
            tok = cls(ranks, doc["pattern"])
            if doc["special_tokens"] != {BOS: tok.bos_id} or doc["vocab_size"] != tok.vocab_size:
                raise ValueError("specials or vocab_size disagree with the ranks")
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"corrupt tokenizer file {path} ({e}); delete it and retrain") from None
        if vocab_size is not None and tok.vocab_size != vocab_size:
            raise UserError(
                f"tokenizer {path} has vocab {tok.vocab_size}, not the {vocab_size} asked for;"
                " pass the matching --vocab or train a new tokenizer into another --out directory"
            )
        tok.directory = Path(directory)
        return tok


def check_vocab(vocab_size: int) -> int:
    if not isinstance(vocab_size, int) or not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise UserError(
            f"vocab size must be an integer from {MIN_VOCAB} (256 bytes + <|bos|>) to {MAX_VOCAB},"
            f" got {vocab_size!r}"
        )
    return vocab_size


def default_tokenizer_dir(corpus_dir: str | os.PathLike, vocab_size: int) -> Path:
    """``cache/tokenizer/<corpus-name>-<vocab>``: one tokenizer per corpus and vocabulary size."""
    return cache_dir() / "tokenizer" / f"{Path(corpus_dir).resolve().name}-{vocab_size}"


def _capped(texts: Iterable[str], max_chars: int | None) -> Iterator[str]:
    """The texts, stopping (mid-document if needed) once ``max_chars`` characters were given."""
    left = max_chars if max_chars is not None else float("inf")
    for text in texts:
        if left <= 0:
            return
        if len(text) > left:
            text = text[: int(left)]
        left -= len(text)
        yield text
