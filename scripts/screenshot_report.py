"""Render a project's report.html in headless Chromium and save a PNG screenshot.

    python scripts/screenshot_report.py PROJECT OUT.png [--width 1200] [--height 3000]

For looking at the report the way a reader will (layout, tables, figures) without a desktop.
Needs Debian's chromium (`apt-get install chromium`); the page is self-contained, so Chromium
is started with networking features off and a throwaway profile.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(html: Path, out: Path, width: int = 1200, height: int = 3000) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium not found: apt-get install chromium")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
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
            f"--screenshot={out}",
            f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    if not out.exists():
        sys.exit(f"chromium wrote no screenshot to {out}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("project", type=Path, help="project directory holding report.html")
    p.add_argument("out", type=Path, help="PNG to write")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=3000)
    args = p.parse_args()
    html = args.project / "report.html"
    if not html.exists():
        sys.exit(f"no {html}: run `miniseries report --project {args.project}` first")
    print(screenshot(html, args.out, args.width, args.height))


if __name__ == "__main__":
    main()
