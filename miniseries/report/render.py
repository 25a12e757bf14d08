"""The report's renderer: a document model (sections of simple blocks), its Markdown and its HTML,
in the number formats of formatting.py.

Why one document model and two renderers: the Markdown (for a terminal, a diff, a GitHub page)
and the HTML (for a browser) must say exactly the same thing. The HTML is self-contained: inline
CSS, every PNG embedded as a base64 data URI, no scripts, no external assets, so it can be mailed
or archived as one file.

Blocks (tuples): ("p", text), ("ul", [text, ...]), ("table", columns, rows),
("img", path, caption), ("verdict", ok, text). Text may use `code` and **bold**.
"""

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, columns: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", list(columns), [[_str(c) for c in r] for r in rows]))

    def img(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", Path(path), caption))

    def verdict(self, ok: bool | None, text: str) -> None:
        self.blocks.append(("verdict", ok, text))


def _str(cell) -> str:
    return "" if cell is None else str(cell)


# ---------------------------------------------------------------------------------------------
# Markdown


def to_markdown(title: str, intro: list[str], sections: list[Section], base: Path) -> str:
    """Image paths are written relative to ``base`` (the folder report.md is in)."""
    lines = [f"# {title}", ""] + [line + "\n" for line in intro]
    lines += ["## Contents", ""] + [f"- [{s.title}](#{s.id})" for s in sections] + [""]
    for s in sections:
        lines += [f'<a id="{s.id}"></a>', f"## {s.title}", ""]
        for block in s.blocks:
            lines += _md_block(block, base) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _md_block(block, base: Path) -> list[str]:
    kind = block[0]
    if kind == "p":
        return [block[1]]
    if kind == "ul":
        return [f"- {item}" for item in block[1]]
    if kind == "verdict":
        mark = {True: "PASS", False: "FAIL", None: "NOTE"}[block[1]]
        return [f"> **{mark}**: {block[2]}"]
    if kind == "img":
        rel = Path(block[1]).resolve().relative_to(base.resolve()).as_posix()
        return [f"![{block[2]}]({rel})", "", f"*{block[2]}*"]
    if kind == "table":
        columns, rows = block[1], block[2]
        right = _numeric_columns(columns, rows)
        sep = ["---:" if r else "---" for r in right]
        out = [
            "| " + " | ".join(_md_cell(c) for c in columns) + " |",
            "| " + " | ".join(sep) + " |",
        ]
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        return out
    raise ValueError(f"unknown block {kind!r}")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


NUMERIC = re.compile(r"^[-+−~×÷$]?[\d.]|^[∞—-]$|^\[")


def _numeric_columns(columns: list[str], rows: list[list[str]]) -> list[bool]:
    """A column is right-aligned when most of its non-empty cells start like a number."""
    out = []
    for j in range(len(columns)):
        cells = [r[j] for r in rows if j < len(r) and r[j]]
        hits = sum(bool(NUMERIC.match(c)) for c in cells)
        out.append(bool(cells) and hits >= 0.6 * len(cells))
    return out


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
:root { --fg: #1d2430; --muted: #5b6676; --line: #dde2ea; --bg: #ffffff; --soft: #f5f7fa;
        --ok: #1a7f37; --okbg: #e9f6ec; --bad: #b42318; --badbg: #fdecea; --accent: #2f5fb3; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
             sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 28px 24px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-top: 8px; border-top: 1px solid var(--line); }
p { margin: 8px 0; }
.meta { color: var(--muted); font-size: 13px; margin-bottom: 14px; }
code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: var(--soft); padding: 1px 4px; border-radius: 3px; }
nav.toc { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
          padding: 10px 16px; margin: 16px 0 8px; font-size: 14px; }
nav.toc ol { margin: 4px 0; padding-left: 20px; columns: 2; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
.scroll { overflow-x: auto; margin: 10px 0; }
table { border-collapse: collapse; font-size: 13.5px; font-variant-numeric: tabular-nums;
        width: auto; min-width: 50%; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; border-bottom: 2px solid var(--line);
     vertical-align: bottom; }
td.num, th.num { text-align: right; }
td.num { white-space: nowrap; }
.iv { color: var(--muted); font-size: 12px; }
td .iv { display: block; line-height: 1.25; }  /* interval under its estimate: narrow columns */
tbody tr:hover { background: #fafbfd; }
figure { margin: 14px 0; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.verdict { border-left: 4px solid var(--muted); background: var(--soft); padding: 8px 12px;
           margin: 10px 0; border-radius: 0 4px 4px 0; }
.verdict.ok { border-color: var(--ok); background: var(--okbg); }
.verdict.bad { border-color: var(--bad); background: var(--badbg); }
.verdict b { margin-right: 6px; }
ul { padding-left: 22px; margin: 8px 0; }
li { margin: 3px 0; }
#headline ul { font-size: 15.5px; }
footer { color: var(--muted); font-size: 13px; }
"""


def _inline(text: str) -> str:
    """Escape, then `code` and **bold**."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cell(text: str) -> str:
    """A table cell: intervals '[lo–hi]' set smaller and muted, so the estimates stand out."""
    return re.sub(r"(\[[^\]]*\])", r'<span class="iv">\1</span>', _inline(text))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _html_block(block) -> str:
    kind = block[0]
    if kind == "p":
        return f"<p>{_inline(block[1])}</p>"
    if kind == "ul":
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>"
    if kind == "verdict":
        ok, text = block[1], block[2]
        cls, mark = {True: ("ok", "PASS"), False: ("bad", "FAIL"), None: ("", "NOTE")}[ok]
        return f'<div class="verdict {cls}"><b>{mark}</b>{_inline(text)}</div>'
    if kind == "img":
        cap = _inline(block[2])
        alt = html.escape(block[2])
        return (
            f'<figure><img src="{_data_uri(block[1])}" alt="{alt}">'
            f"<figcaption>{cap}</figcaption></figure>"
        )
    if kind == "table":
        columns, rows = block[1], block[2]
        right = _numeric_columns(columns, rows)

        def cells(values, tag):
            return "".join(
                f"<{tag}{' class=num' if r else ''}>{_cell(v)}</{tag}>"
                for v, r in zip(values, right)
            )

        body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
        return (
            f'<div class="scroll"><table><thead><tr>{cells(columns, "th")}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )
    raise ValueError(f"unknown block {kind!r}")


def to_html(title: str, intro: list[str], sections: list[Section]) -> str:
    toc = "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        "".join(f'<div class="meta">{_inline(line)}</div>' for line in intro),
        f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>',
    ]
    for s in sections:
        tag = "footer" if s.id == "notes" else "section"
        parts.append(f'<{tag} id="{s.id}"><h2>{html.escape(s.title)}</h2>')
        parts += [_html_block(b) for b in s.blocks]
        parts.append(f"</{tag}>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def core_text(core, label) -> str:
    if core is None:
        return ""
    return f"{core:.4f}" if label in (None, "CORE") else f"{core:.4f} ({label})"
