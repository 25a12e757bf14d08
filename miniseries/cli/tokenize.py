"""`miniseries data tokenize`: turn a corpus into token shards (train/val) for the loader.

``miniseries/cli/data.py`` owns the `data` command and calls ``add_tokenize(sub)`` to add this one.
"""

import argparse
from pathlib import Path

from miniseries.cli.tokenizer import add_vocab_args, default_corpus, vocab_from_args


def add_tokenize(sub) -> None:
    p = sub.add_parser(
        "tokenize",
        help="tokenize a corpus into train/val token shards",
        description="Encode every corpus document (prefixed with <|bos|>) into memory-mappable "
        "token shards; about 1% of documents, picked by a hash of their text, become the "
        "validation split. Running it again on the same corpus and tokenizer does nothing.",
    )
    p.add_argument("--corpus", type=Path, help="corpus folder (default: CACHE/corpus/offline)")
    p.add_argument(
        "--tokenizer", type=Path, help="tokenizer folder (default: CACHE/tokenizer/CORPUS-VOCAB)"
    )
    add_vocab_args(p)
    p.add_argument("--out", type=Path, help="output folder (default: CACHE/tokens/CORPUS-TOKID)")
    p.add_argument(
        "--val-fraction", type=float, default=0.01, help="share of docs held out (default 0.01)"
    )
    p.add_argument("--workers", type=int, default=2, help="encoding threads (default 2)")
    p.set_defaults(run=run_tokenize)


def run_tokenize(args: argparse.Namespace) -> int:
    import time

    from miniseries.cli.common import require
    from miniseries.data.shards import default_tokens_dir, read_meta, tokenize_corpus
    from miniseries.data.tokenizer import Tokenizer, default_tokenizer_dir
    from miniseries.errors import UserError

    require(args.workers >= 1, f"--workers must be >= 1, got {args.workers}")
    corpus = args.corpus or default_corpus()
    if args.tokenizer is not None:
        vocab = vocab_from_args(args) if (args.vocab or args.preset) else None
        tok = Tokenizer.load(args.tokenizer, vocab)
    else:
        tok = Tokenizer.load(default_tokenizer_dir(corpus, vocab_from_args(args)))
    out = args.out or default_tokens_dir(corpus, tok)
    try:
        before = read_meta(out)
    except UserError:
        before = None
    t0 = time.time()
    out = tokenize_corpus(corpus, tok, out, val_fraction=args.val_fraction, workers=args.workers)
    meta = read_meta(out)
    if meta == before:
        print(f"token shards already up to date in {out}")
        return 0
    seconds = time.time() - t0
    tr, va = meta["splits"]["train"], meta["splits"]["val"]
    nbytes, ntok = tr["bytes"] + va["bytes"], tr["tokens"] + va["tokens"]
    print(
        f"tokenized {tr['docs'] + va['docs']:,} docs: train {tr['tokens']:,} tokens, "
        f"val {va['tokens']:,} tokens ({va['docs']:,} docs); "
        f"{nbytes / max(ntok, 1):.2f} bytes/token, {nbytes / 1e6 / seconds:.1f} MB/s -> {out}"
    )
    return 0
