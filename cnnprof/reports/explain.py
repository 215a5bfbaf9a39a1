"""The end of a run, whichever way it was started (`cnnprof run`, `cnnprof profile`, the API, the
magic): its findings, optionally shown in the terminal, then report.html (and a browser on it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .findings import Finding


@dataclass(frozen=True)
class Explanation:
    findings: list[Finding]
    report: Path | None  # report.html, when it was written


def explain(run_dir: Path, *, show: bool, write_report: bool, open_report: bool = False) -> Explanation:
    from ..terminal import console
    from ..traces import schema
    from ..traces.reader import RunData
    from .diagnosis import diagnose, findings_table

    findings = diagnose(RunData(run_dir))
    if show and findings:
        console.print(findings_table(findings))
    report = None
    if write_report:
        from .html import build_report

        report = build_report([run_dir], run_dir / schema.REPORT)
        if show:
            console.print(f"report: {report}", markup=False)
        if open_report:
            import webbrowser

            webbrowser.open(report.resolve().as_uri())
    return Explanation(findings, report)
