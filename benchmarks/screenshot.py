"""Screenshots of reports for the README (docs/img), taken in Debian's Chromium.

    python benchmarks/screenshot.py REPORT.html OUT.png [--range A B]

`--range` selects seconds A..B on the timeline first, so the selection panel shows a call tree.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--range", nargs=2, type=float, metavar=("A", "B"))
    args = parser.parse_args()
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1500, "height": 1000},
        )
        page = context.new_page()
        page.goto(args.report.resolve().as_uri())
        page.wait_for_function("window.cnnprof && window.cnnprof.ready", timeout=60_000)
        if args.range:
            page.evaluate("(r) => Plotly.relayout(document.getElementById('timeline'), {'xaxis.range': r})",
                          args.range)
            page.wait_for_timeout(1500)
        page.screenshot(path=str(args.out), full_page=True)
        context.close()
    print(args.out)


if __name__ == "__main__":
    main()
