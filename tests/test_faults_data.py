"""Bad data: damaged shards, corpora and checkpoints give one clear line and overwrite nothing.

Every case goes through the CLI (`miniseries.cli.main`): exit code 2, one stderr line that names the
file and says what to do, no traceback; and every file that was there before is byte-for-byte and
mtime-for-mtime the same afterwards.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from miniseries.cli import main

TINY = ["--vocab-size", "512", "--seq-len", "64", "--batch-tokens", "512"]
TINY += ["--device-batch-size", "4", "--val-tokens", "1024", "--quiet", "--evals", "1"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict:
    """path -> (sha256, mtime_ns) of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def cli(argv, capsys) -> str:
    """Run the CLI; assert exit 2 with one stderr line; return that line."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}: {err[-1500:]}"
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("miniseries: error: ")
    return lines[0]


def train_argv(tiny_data, out, depth=1, steps=2, data=None):
    tokens, tok = tiny_data
    return ["train", "--depth", depth, "--steps", steps, "--out", out, "--data", data or tokens,
            "--tokenizer", tok, *TINY]  # fmt: skip


@pytest.fixture
def shards(tiny_data, tmp_path) -> Path:
    """A private copy of the tiny token shards, free to damage."""
    out = tmp_path / "tokens"
    shutil.copytree(tiny_data[0], out)
    return out


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "d1"
    assert main([str(a) for a in train_argv(tiny_data, out)]) == 0
    return out


# -- token shards -------------------------------------------------------------------------------


def test_truncated_token_shard(tiny_data, shards, tmp_path, capsys):
    train_bin = shards / "train.bin"
    with open(train_bin, "r+b") as f:
        f.truncate(train_bin.stat().st_size - 7)  # a torn write: not even whole tokens
    before = snapshot(shards)
    line = cli(train_argv(tiny_data, tmp_path / "run", data=shards), capsys)
    assert str(train_bin) in line and "truncated" in line and "tokenize" in line
    assert snapshot(shards) == before
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_corrupt_token_shard(tiny_data, shards, tmp_path, capsys):
    """Same size, wrong content: the document starts no longer hold BOS."""
    tokens = np.memmap(shards / "train.bin", dtype=np.uint16, mode="r+")
    offsets = np.load(shards / "train_offsets.npy")
    tokens[offsets[3]] = 7  # one BOS overwritten
    tokens.flush()
    del tokens
    before = snapshot(shards)
    line = cli(train_argv(tiny_data, tmp_path / "run", data=shards), capsys)
    assert str(shards / "train.bin") in line and "does not match" in line
    assert snapshot(shards) == before


def test_corrupt_offsets_and_meta(tiny_data, shards, tmp_path, capsys):
    (shards / "val_offsets.npy").write_bytes(b"\x93NUMPY garbage")
    before = snapshot(shards)
    line = cli(train_argv(tiny_data, tmp_path / "run", data=shards), capsys)
    assert str(shards / "val_offsets.npy") in line and "tokenize" in line
    assert snapshot(shards) == before
    (shards / "meta.json").write_text("{not json")
    before = snapshot(shards)
    line = cli(train_argv(tiny_data, tmp_path / "run", data=shards), capsys)
    assert str(shards / "meta.json") in line and "corrupt" in line
    assert snapshot(shards) == before


# -- corpora ------------------------------------------------------------------------------------


def test_parquet_without_text_column(tiny_data, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    bad = corpus / "shard_00000.parquet"
    pq.write_table(pa.table({"body": ["a document " * 20] * 5}), bad)
    before = snapshot(corpus)
    out = tmp_path / "tokens"
    line = cli(["data", "tokenize", "--corpus", corpus, "--tokenizer", tiny_data[1], "--out", out],
               capsys)  # fmt: skip
    assert str(bad) in line and "`text`" in line and "rebuild" in line
    assert not out.exists() or not any(out.iterdir())
    line = cli(["tokenizer", "train", "--corpus", corpus, "--vocab", 300, "--out", tmp_path / "t"],
               capsys)  # fmt: skip
    assert str(bad) in line
    assert not (tmp_path / "t" / "tokenizer.json").exists()
    # the same file handed to a local corpus build
    line = cli(["data", "build", "--source", "local", corpus, "--out", tmp_path / "c2"], capsys)
    assert str(bad) in line and "'text' column" in line
    assert snapshot(corpus) == before


def test_corrupt_parquet_shard(tiny_data, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    bad = corpus / "shard_00000.parquet"
    bad.write_bytes(b"PAR1" + b"\x00" * 100)
    line = cli(["data", "tokenize", "--corpus", corpus, "--tokenizer", tiny_data[1], "--out",
                tmp_path / "tokens"], capsys)  # fmt: skip
    assert str(bad) in line and "rebuild" in line


def test_empty_corpus(tiny_data, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), corpus / "shard_00000.parquet")
    line = cli(["data", "tokenize", "--corpus", corpus, "--tokenizer", tiny_data[1], "--out",
                tmp_path / "tokens"], capsys)  # fmt: skip
    assert str(corpus) in line and "0 non-empty documents" in line
    empty = tmp_path / "empty_folder"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "blank.txt").write_text("   \n")
    line = cli(["data", "build", "--source", "local", empty, "--out", tmp_path / "c"], capsys)
    assert "no documents found" in line and str(empty) in line
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_non_utf8_file_in_local_corpus(tmp_path, capsys):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "good.txt").write_text("a perfectly fine document " * 10)
    bad = folder / "latin1.txt"
    bad.write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e ".encode("latin-1") * 10)
    before = snapshot(folder)
    out = tmp_path / "corpus"
    line = cli(["data", "build", "--source", "local", folder, "--out", out], capsys)
    assert str(bad) in line and "not UTF-8" in line and "iconv" in line
    assert snapshot(folder) == before and not (out / "manifest.json").exists()


def test_existing_corpus_is_not_clobbered_by_a_failed_rebuild(tmp_path, capsys):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("the first document, long enough to keep " * 5)
    out = tmp_path / "corpus"
    capsys.readouterr()
    assert main(["data", "build", "--source", "local", str(folder), "--out", str(out)]) == 0
    before = snapshot(out)
    (folder / "b.txt").write_bytes(b"\xff\xfe not utf-8 \x80")
    cli(["data", "build", "--source", "local", folder, "--out", out], capsys)
    assert snapshot(out) == before  # the finished corpus is still there, untouched


# -- tokenizers and checkpoints -----------------------------------------------------------------


def test_tokenizer_of_another_vocab_size(tiny_data, tmp_path, capsys):
    tokens, tok = tiny_data
    before = snapshot(Path(tok))
    line = cli(["data", "tokenize", "--corpus", tmp_path, "--tokenizer", tok, "--vocab", 1024],
               capsys)  # fmt: skip
    assert str(Path(tok) / "tokenizer.json") in line and "vocab 512" in line and "1024" in line
    argv = train_argv(tiny_data, tmp_path / "run")
    argv[argv.index("--vocab-size") + 1] = "1024"
    line = cli(argv, capsys)
    assert str(tokens) in line and "512" in line and "--vocab-size" in line
    assert snapshot(Path(tok)) == before


def test_checkpoint_of_another_depth(tiny_data, finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    line = cli(train_argv(tiny_data, run, depth=2), capsys)
    assert str(run / "checkpoint.pt") in line and "another --out" in line
    assert snapshot(run) == before  # config, log, checkpoint and summary all untouched


def test_run_config_that_disagrees_with_its_checkpoint(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["depth"] = 2
    (run / "config.json").write_text(json.dumps(cfg))
    before = snapshot(run)
    line = cli(["sample", run, "--tokens", 4], capsys)
    assert str(run / "checkpoint.pt") in line and "does not match" in line
    assert snapshot(run) == before


def test_truncated_checkpoint(tiny_data, finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    before = snapshot(run)
    line = cli(["sample", run], capsys)
    assert str(ckpt) in line and "cannot be loaded safely" in line
    line = cli(train_argv(tiny_data, run, steps=4), capsys)
    assert str(ckpt) in line and "move it away" in line
    assert snapshot(run) == before
