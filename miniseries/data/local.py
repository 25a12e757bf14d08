"""A corpus from a local folder of your own text.

Every file under the folder (recursively, in sorted order, hidden files skipped) is read by its
extension:

    .txt      one document per file
    .jsonl    one document per line, from its "text" field
    .parquet  one document per row, from its "text" column

Other extensions are ignored. Text must be UTF-8: a file that is not fails with its name and how to
re-encode it. Empty documents and duplicates are dropped and the rest shuffled with a fixed seed,
as for the other sources (the whole corpus is held in memory while it is written).
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path

from miniseries.data import corpus
from miniseries.errors import UserError

KINDS = (".txt", ".jsonl", ".parquet")


def _not_utf8(path: Path, e: UnicodeDecodeError) -> UserError:
    return UserError(
        f"{path} is not UTF-8 text (bad byte at offset {e.start}); re-encode it, e.g. "
        f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`, or remove it"
    )


def read_txt(path: Path) -> Iterator[str]:
    try:
        yield path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None


def read_jsonl(path: Path) -> Iterator[str]:
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(
                f"{path}:{n}: not valid JSON ({e.msg}); one JSON object per line"
            ) from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise UserError(f'{path}:{n}: each line needs a string "text" field')
        yield row["text"]


def read_parquet(path: Path) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise UserError(f"{path} is not a readable parquet file ({e})") from None
    names = pf.schema_arrow.names
    if "text" not in names:
        raise UserError(
            f"{path} has no 'text' column (columns: {', '.join(names)}); "
            "rename the column holding the documents to 'text'"
        )
    for i in range(pf.num_row_groups):
        for text in pf.read_row_group(i, columns=["text"]).column("text").to_pylist():
            if isinstance(text, str):
                yield text


READERS = {".txt": read_txt, ".jsonl": read_jsonl, ".parquet": read_parquet}


def local_files(folder: Path) -> list[Path]:
    if not folder.exists():
        raise UserError(f"no such folder: {folder}")
    if folder.is_file():
        return [folder] if folder.suffix in KINDS else []
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and p.suffix in KINDS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def local_documents(folder: Path) -> list[tuple[str, str]]:
    """(kind, text) for every document under ``folder``; kind is "txt", "jsonl" or "parquet"."""
    docs = []
    for path in local_files(folder):
        kind = path.suffix[1:]
        docs += [(kind, text) for text in READERS[path.suffix](path)]
    return docs


def build_local(
    folder: Path, out: Path, *, max_mb=None, seed: int = 0, force: bool = False, log=print
) -> Path:
    folder = folder.resolve()
    files = local_files(folder)
    # the files' names, sizes and mtimes are part of the key: an edited folder is rebuilt
    stamp = [[str(p.relative_to(folder)), p.stat().st_size, int(p.stat().st_mtime)] for p in files]
    params = {"path": str(folder), "max_mb": max_mb, "seed": seed, "files": stamp}
    if not force and corpus.is_complete(out, params):
        log(f"cached: {out}")
        return out
    t0 = time.time()
    docs = local_documents(folder)
    if not any(t.strip() for _, t in docs):
        raise UserError(
            f'no documents found under {folder}: it needs non-empty .txt, .jsonl (a "text" '
            'field per line) or .parquet (a "text" column) files'
        )
    subs = {k[1:]: {"license": "as provided by the user", "fetched": f"local files under {folder}"}
            for k in KINDS}  # fmt: skip
    manifest = corpus.write_documents(
        out,
        docs,
        source="local",
        params=params,
        sub_sources=subs,
        min_chars=1,
        seed=seed,
        max_mb=max_mb,
    )
    manifest["build_seconds"] = round(time.time() - t0, 1)
    corpus.write_manifest(out, manifest)
    return out
