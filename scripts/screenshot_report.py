"""Render a project's report.html in headless Chromium: save a PNG screenshot, or check it.

    python scripts/screenshot_report.py PROJECT OUT.png [--width 1200] [--height 3000]
    python scripts/screenshot_report.py PROJECT --check

For looking at the report the way a reader will (layout, tables, figures) without a desktop.
`--check` loads a copy of the page with a probe script appended and prints, as JSON, what the
browser rendered: how many images there are, which failed to decode, and which sections have a
visible box. Needs Debian's chromium (`apt-get install chromium`); the page is self-contained, so
Chromium is started with networking features off and a throwaway profile.
"""

import argparse
import html as html_lib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const result = {
    images: images.length,
    broken: images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt),
    sections: Array.from(document.querySelectorAll("section[id], footer[id]"))
      .filter((e) => e.getBoundingClientRect().height > 0).map((e) => e.id),
  };
  const out = document.createElement("pre");
  out.id = "miniseries-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def chromium_cmd(profile: str) -> list[str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium not found: apt-get install chromium")
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]


def screenshot(html: Path, out: Path, width: int = 1200, height: int = 3000) -> Path:
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = chromium_cmd(profile)
        cmd += [f"--screenshot={out}", f"--window-size={width},{height}", html.resolve().as_uri()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    if not out.exists():
        sys.exit(f"chromium wrote no screenshot to {out}")
    return out


def check(html: Path) -> dict:
    """What the browser rendered of the page: {images, broken, sections} (see the docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "probe.html"
        text = html.read_text(encoding="utf-8")
        page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        cmd = chromium_cmd(str(Path(tmp) / "profile"))
        cmd += ["--dump-dom", "--virtual-time-budget=10000", page.as_uri()]
        dom = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="miniseries-check">(.*?)</pre>', dom, re.S)
    if found is None:
        sys.exit("the page never finished loading in chromium (no probe result in the DOM)")
    return json.loads(html_lib.unescape(found.group(1)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("project", type=Path, help="project directory holding report.html")
    p.add_argument("out", type=Path, nargs="?", help="PNG to write")
    p.add_argument("--check", action="store_true", help="print what rendered (JSON) instead")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=3000)
    args = p.parse_args()
    html = args.project / "report.html"
    if not html.exists():
        sys.exit(f"no {html}: run `miniseries report --project {args.project}` first")
    if args.check:
        print(json.dumps(check(html)))
    elif args.out is None:
        p.error("give OUT.png, or --check")
    else:
        print(screenshot(html, args.out, args.width, args.height))


if __name__ == "__main__":
    main()
