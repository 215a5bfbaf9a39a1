"""The end of a run, whichever way it was started (`cnnprof run`, `cnnprof profile`, the API, the
magic): its verdict and findings, optionally shown in the terminal, then report.html (and a browser on it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .findings import Diagnosis, Finding, Verdict


@dataclass(frozen=True)
class Explanation:
    diagnosis: Diagnosis
    report: Path | None  # report.html, when it was written

    @property
    def findings(self) -> list[Finding]:
        return self.diagnosis.findings

    @property
    def verdict(self) -> Verdict:
        return self.diagnosis.verdict


def explain(run_dir: Path, *, show: bool, write_report: bool, open_report: bool = False) -> Explanation:
    from ..terminal import console
    from ..traces import schema
    from ..traces.reader import RunData
    from .diagnosis import diagnose, diagnosis_table

    run = RunData(run_dir)
    diagnosis = diagnose(run)
    if show:
        console.print(diagnosis_table(diagnosis), soft_wrap=False)
        for loss in run.losses:  # what the run lost, where the user looks (traces/losses.py)
            console.print(f"lost: {loss}", markup=False)
    report = None
    if write_report:
        from .html import build_report

        report = build_report([run_dir], run_dir / schema.REPORT)
        if show:
            console.print(f"report: {report}", markup=False)
        if open_report:
            import webbrowser

            webbrowser.open(report.resolve().as_uri())
    return Explanation(diagnosis, report)
