"""The HTML report: one self-contained file that works offline (plotly.js, the page's script and
its style are inlined; nothing is fetched). One run directory gives the full report of that run
(run_page.py); several give the comparison (compare.py). Both are built from page.py's pieces.

Every piece of user-controlled text (function and file names, argv, script names, error text) is
escaped for where it lands (text.py); the page's script builds its DOM with `textContent` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from ..traces import schema
from ..traces.reader import RunData
from .compare import render_comparison
from .run_page import render_run


def build_report(run_dirs: Sequence[Path | str], out: Path | str) -> Path:
    """Writes the report of one run directory, or the comparison of several, to `out`; returns it.
    Raises RunDirError (a UserError, one line) for a directory without a readable run.json."""
    if not run_dirs:
        raise UserError("no run directory given: pass one (report) or several (comparison)")
    runs = [RunData(p) for p in run_dirs]
    text = render_run(runs[0]) if len(runs) == 1 else render_comparison(runs)
    return write_page(out, text)


def write_page(out: Path | str, text: str) -> Path:
    """Writes a report page atomically (a reader never sees half of it); returns where."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}; pass another -o FILE") from None
    return out


def default_report_path(run_dirs: Sequence[Path | str]) -> Path:
    """Where `cnnprof report` writes without -o: report.html in the run directory, or
    comparison.html in the current directory for several runs."""
    if len(run_dirs) == 1:
        return Path(run_dirs[0]) / schema.REPORT
    return Path("comparison.html")


def report_command(run_dirs: Sequence[Path | str], out: Path | str | None = None) -> Path:
    """`cnnprof report RUN_DIR [RUN_DIR ...] [-o FILE]`: writes the report, returns where."""
    return build_report(run_dirs, out if out is not None else default_report_path(run_dirs))
