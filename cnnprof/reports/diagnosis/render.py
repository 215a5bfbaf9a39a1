"""The diagnosis in the terminal (rich) and as JSON."""

from __future__ import annotations

import json
from typing import Any

from ..findings import Diagnosis, Verdict
from .sites import site_text

_SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def diagnosis_json(diagnosis: Diagnosis) -> str:
    """`{"verdict": {...}, "findings": [{id, severity, claim, evidence, fix, call_sites}, ...]}`."""
    return json.dumps(diagnosis.to_dict(), indent=2)


def split_text(verdict: Verdict) -> str:
    """ "data 5% · forward 30% · ..." for the parts that hold any time."""
    return " · ".join(f"{part} {share:.0%}" for part, share in verdict.split.items() if share >= 0.005)


def verdict_panel(verdict: Verdict) -> Any:
    from rich.panel import Panel
    from rich.text import Text

    body = Text()
    body.append(verdict.claim, style="bold")
    if verdict.split:
        step = f"{verdict.step_s * 1e3:.2f} ms" if verdict.step_s is not None else "?"
        body.append(f"\nsteady-state step {step}: {split_text(verdict)}")
    if verdict.device_busy_pct is not None:
        body.append(f"\nGPU busy {verdict.device_busy_pct:.0f}%")
    body.append(f"\njudged on: {verdict.window}", style="dim")
    for line in verdict.evidence:
        body.append(f"\n  - {line}")
    body.append("\nwhat to do: ", style="green")
    body.append(verdict.fix)
    if verdict.call_sites:
        body.append("\nat: ", style="green")
        body.append("; ".join(site_text(s) for s in verdict.call_sites[:3]))
    return Panel(body, title=f"Verdict: {verdict.id}", title_align="left", border_style="bold")


def diagnosis_table(diagnosis: Diagnosis) -> Any:
    """The verdict, then one row per finding (claim, evidence, fix, top call sites)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Findings", show_lines=True, expand=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("finding", no_wrap=True)
    table.add_column("what, why, and what to do", ratio=1)
    if not diagnosis.findings:
        table.add_row("", "none", "No further finding beyond the verdict.")
    for f in diagnosis.findings:
        body = Text()
        body.append(f.claim, style="bold")
        for line in f.evidence:
            body.append(f"\n  - {line}")
        body.append("\nfix: ", style="green")
        body.append(f.fix)
        if f.call_sites:
            body.append("\nat: ", style="green")
            body.append("; ".join(site_text(s) for s in f.call_sites[:3]))
        table.add_row(Text(f.severity, style=_SEVERITY_STYLE.get(f.severity, "")), f.id, body)
    return Group(verdict_panel(diagnosis.verdict), table)
