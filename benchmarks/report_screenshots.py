"""Look at the report as a reader does: headless Chromium screenshots of its first screen at
given widths, and the page's height in screens with every collapsible section closed (and open).

    python benchmarks/report_screenshots.py results/report.html --out docs/images --name report
    python benchmarks/report_screenshots.py results/report.html --height-only

Needs Debian's chromium (/usr/bin/chromium, or $CHROMIUM). Prints one line per measurement;
the screenshots are <out>/<name>-<width>.png (the first 900 px of the page) and, with --full,
<out>/<name>-<width>-full.png (the page with every section collapsed, up to --full-height px)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
SCREEN = 900  # px: one screen's height

# collapses (or opens) every <details> and writes the page's height into the DOM, for --dump-dom
MEASURE = """<script>
window.addEventListener("load", function () {
  document.querySelectorAll("details").forEach(function (d) { d.open = %s; });
  var m = document.createElement("meta"); m.id = "measured-height";
  m.content = String(document.documentElement.scrollHeight); document.head.appendChild(m);
});
</script></body>"""


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        sys.exit("report_screenshots: no chromium (apt-get install chromium, or set CHROMIUM)")
    return found


def run(args: list[str], profile: str) -> str:
    out = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                         timeout=120)
    return out.stdout


def page_height(report: Path, width: int, open_sections: bool) -> int:
    """The page's height in px at `width` with every <details> closed (or open)."""
    html = report.read_text().replace("</body>", MEASURE % ("true" if open_sections else "false"), 1)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html)
        dom = run([f"--window-size={width},{SCREEN}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                  str(Path(tmp) / "profile"))
    found = re.search(r'id="measured-height" content="(\d+)"', dom) or re.search(r'content="(\d+)" id="measured-height"', dom)
    if not found:
        raise RuntimeError("chromium did not report the page's height")
    return int(found.group(1))


def screenshot(report: Path, width: int, height: int, out: Path, collapse: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = report
        if collapse:
            source = Path(tmp) / "page.html"
            source.write_text(report.read_text().replace("</body>", MEASURE % "false", 1))
        run([f"--window-size={width},{height}", "--virtual-time-budget=5000", f"--screenshot={out}", source.as_uri()],
            str(Path(tmp) / "profile"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--name", default="report")
    parser.add_argument("--widths", type=int, nargs="+", default=[1400, 900])
    parser.add_argument("--height-only", action="store_true")
    parser.add_argument("--full", action="store_true", help="also the whole page with every section collapsed")
    parser.add_argument("--full-height", type=int, default=12 * SCREEN)
    args = parser.parse_args()
    report = args.report.resolve()
    for width in args.widths:
        closed, opened = page_height(report, width, False), page_height(report, width, True)
        print(f"{width} px wide: {closed} px with every section collapsed ({closed / SCREEN:.1f} screens of "
              f"{SCREEN} px), {opened} px with every section open ({opened / SCREEN:.1f} screens)")
        if not args.height_only:
            args.out.mkdir(parents=True, exist_ok=True)
            screenshot(report, width, SCREEN, args.out / f"{args.name}-{width}.png")
            if args.full:
                screenshot(report, width, min(closed, args.full_height), args.out / f"{args.name}-{width}-full.png",
                           collapse=True)


if __name__ == "__main__":
    main()
