"""The IPython extension, driven through a real InteractiveShell."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import only_run_dir, read_meta
from IPython.core.interactiveshell import InteractiveShell  # the dev extra installs IPython

from cnnprof.reports.findings import VERDICTS


class Shell:
    def __init__(self) -> None:
        self.ip = InteractiveShell.instance()
        self.shown: list[dict[str, Any]] = []
        self.ip.display_pub.publish = self._publish  # what display() would put in the notebook

    def _publish(self, data: dict[str, Any], metadata: Any = None, **kwargs: Any) -> None:
        self.shown.append(data)

    def html(self) -> str:
        return "".join(d.get("text/html", "") for d in self.shown)


@pytest.fixture
def shell() -> Iterator[Shell]:
    s = Shell()
    s.ip.run_line_magic("load_ext", "cnnprof")
    yield s
    InteractiveShell.clear_instance()


def test_cell_magic_profiles_the_cell_and_shows_the_report_inline(shell: Shell, runs_dir: Path) -> None:
    shell.ip.run_cell("import cnnprof\ntotal = 0")
    cell = "for i in range(5):\n    total += sum(range(10_000))\n    cnnprof.step()\n"
    shell.ip.run_cell_magic("cnnprof", f"--out {runs_dir} --telemetry procfs", cell)
    assert shell.ip.user_ns["total"] == 5 * sum(range(10_000))  # the cell ran in the user's namespace
    run_dir = only_run_dir(runs_dir)
    meta = read_meta(run_dir)
    assert (meta["kind"], meta["status"]) == ("block", "complete") and run_dir.name.endswith("cell")
    page = shell.html()
    verdict = re.search(r"\(complete\), verdict ([a-z-]+), \d+ finding", html.unescape(page))
    assert verdict is not None and verdict.group(1) in VERDICTS
    assert f"cnnprof: {run_dir} (complete)" in html.unescape(page)
    frame = re.search(r'<iframe srcdoc="([^"]*)"', page)
    assert frame is not None
    assert html.unescape(frame.group(1)) == (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<script src=" not in html.unescape(frame.group(1))  # self-contained: nothing fetched
    assert any("finding(s)" in d.get("text/plain", "") for d in shell.shown)


def test_a_failing_cell_leaves_a_failed_run(shell: Shell, runs_dir: Path) -> None:
    shell.ip.run_cell_magic("cnnprof", f"--out {runs_dir} --telemetry none --profiler none", "1 / 0")
    meta = read_meta(only_run_dir(runs_dir))
    assert meta["status"] == "failed" and "ZeroDivisionError" in meta["error"]
    assert "the cell ended failed" in shell.html()


def test_report_magic_shows_an_existing_run(shell: Shell, runs_dir: Path) -> None:
    import cnnprof

    with cnnprof.profile(out=runs_dir, telemetry="none", profiler="none", report=False, show=False) as run:
        pass
    shell.ip.run_line_magic("cnnprof_report", str(run.run_dir))
    assert (run.run_dir / "report.html").exists() and "<iframe srcdoc=" in shell.html()


def test_magic_errors_are_one_line(shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell.ip.run_cell(f"%cnnprof_report {tmp_path / 'nothing'}")
    shell.ip.run_cell(f"%%cnnprof --out {tmp_path / 'runs'} --telemetry nosuch\npass")
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert out.count("UsageError:") == 2 and "no such run directory" in out and "nosuch" in out
    assert "Traceback" not in out and not (tmp_path / "runs").exists()
