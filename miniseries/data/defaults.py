"""Where a run finds its data when the user names none: the offline corpus, tokenized.

corpus     cache/corpus/offline                      (miniseries data build)
tokenizer  cache/tokenizer/offline-<vocab>           (miniseries tokenizer train)
tokens     cache/tokens/offline-<tokenizer id>       (miniseries data tokenize)
"""

from pathlib import Path

from miniseries.errors import UserError
from miniseries.paths import cache_dir


def default_corpus_dir() -> Path:
    return cache_dir() / "corpus" / "offline"


def resolve_data(data: str | None, tokenizer: str | None, vocab_size: int) -> tuple[Path, Path]:
    """(token shards folder, tokenizer folder), each checked to exist, with the fix if not."""
    from miniseries.data.shards import default_tokens_dir, read_meta
    from miniseries.data.tokenizer import Tokenizer, default_tokenizer_dir

    if data is not None:
        meta = read_meta(data)
        if meta["vocab_size"] != vocab_size:
            raise UserError(
                f"token shards {data} use vocab {meta['vocab_size']}, the run wants {vocab_size}; "
                "pass --vocab-size to match or tokenize with a matching tokenizer"
            )
        tok_dir = Path(
            tokenizer
            or meta.get("tokenizer_dir")
            or default_tokenizer_dir(meta["corpus"], vocab_size)
        )
        return Path(data), tok_dir
    corpus = default_corpus_dir()
    tok_dir = Path(tokenizer) if tokenizer else default_tokenizer_dir(corpus, vocab_size)
    if not (tok_dir / "tokenizer.json").exists():
        raise UserError(
            f"no tokenizer at {tok_dir}; run `miniseries data build --source offline`, then "
            f"`miniseries tokenizer train --vocab {vocab_size}` and `miniseries data tokenize` "
            "(or pass --data and --tokenizer)"
        )
    tokens = default_tokens_dir(corpus, Tokenizer.load(tok_dir, vocab_size=vocab_size))
    if not (tokens / "meta.json").exists():
        raise UserError(f"no token shards at {tokens}; run `miniseries data tokenize` first")
    return tokens, tok_dir
