"""`miniseries tokenizer train`: learn a byte-level BPE vocabulary from a corpus."""

import argparse
import time
from pathlib import Path

from miniseries.paths import cache_dir

DEFAULT_MAX_CHARS = 2_000_000_000


def default_corpus() -> Path:
    return cache_dir() / "corpus" / "offline"


def vocab_from_args(args: argparse.Namespace) -> int:
    """--vocab wins; else the preset's vocabulary (cpu by default)."""
    from miniseries.config import get_preset

    return args.vocab if args.vocab is not None else get_preset(args.preset or "cpu").vocab_size


def add_vocab_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--vocab", type=int, help="vocabulary size, <|bos|> included (e.g. 1024)")
    from miniseries.config import ALIASES, PRESETS

    g.add_argument(
        "--preset", choices=(*PRESETS, *ALIASES), help="take the preset's vocab (default cpu)"
    )


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "tokenizer",
        help="train the BPE tokenizer",
        description="Train a byte-level BPE tokenizer (GPT-4-style split, one <|bos|> special).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    t = actions.add_parser(
        "train",
        help="learn a BPE vocabulary from a corpus",
        description="Learn a BPE vocabulary from the corpus's documents with rustbpe and save it "
        "as tokenizer.json. A tokenizer already in --out with the same vocab is kept (use --force "
        "to retrain).",
    )
    t.add_argument("--corpus", type=Path, help="corpus folder (default: CACHE/corpus/offline)")
    add_vocab_args(t)
    t.add_argument(
        "--max-chars",
        type=int,
        default=DEFAULT_MAX_CHARS,
        help=f"train on at most this many characters (default {DEFAULT_MAX_CHARS:,})",
    )
    t.add_argument("--out", type=Path, help="output folder (default: CACHE/tokenizer/CORPUS-VOCAB)")
    t.add_argument("--force", action="store_true", help="retrain even if --out has a tokenizer")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) != "train":
        args.parser.print_help()
        return 2
    from miniseries.cli.common import require
    from miniseries.data.shards import iter_texts
    from miniseries.data.tokenizer import FILE_NAME, Tokenizer, check_vocab, default_tokenizer_dir
    from miniseries.progress import progress_bar

    corpus = args.corpus or default_corpus()
    vocab = check_vocab(vocab_from_args(args))
    require(args.max_chars > 0, f"--max-chars must be positive, got {args.max_chars}")
    out = args.out or default_tokenizer_dir(corpus, vocab)
    if (out / FILE_NAME).is_file() and not args.force:
        tok = Tokenizer.load(out, vocab)
        print(f"tokenizer vocab {tok.vocab_size} (id {tok.id}) already in {out}; --force retrains")
        return 0

    seen = [0]
    t0 = time.time()
    with progress_bar() as bar:
        task = bar.add_task("reading text (chars)", total=None)

        def texts():
            for batch in iter_texts(corpus):
                for text in batch:
                    seen[0] += len(text)
                    bar.update(task, completed=seen[0])
                    yield text

        tok = Tokenizer.train(texts(), vocab, max_chars=args.max_chars)
    seconds = time.time() - t0
    tok.save(out)
    sample = next(iter_texts(corpus, batch_size=256), [])
    nbytes = sum(len(t.encode("utf-8")) for t in sample)
    ntok = sum(len(ids) for ids in tok.encode_batch(sample))
    ratio = f"{nbytes / ntok:.2f} bytes/token on a sample" if ntok else "empty sample"
    chars = min(seen[0], args.max_chars)
    print(
        f"tokenizer vocab {tok.vocab_size} (id {tok.id}) trained on {chars:,} chars in "
        f"{seconds:.1f} s; {ratio} -> {out}"
    )
    return 0
