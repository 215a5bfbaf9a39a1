"""The diagnosis in the terminal (rich) and as JSON."""

from __future__ import annotations

import json
from typing import Any

from ..findings import Diagnosis, Finding, Verdict
from .sites import site_text

_SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def diagnosis_json(diagnosis: Diagnosis) -> str:
    """`{"verdict": {...}, "findings": [{id, severity, claim, evidence, fix, call_sites}, ...]}`."""
    return json.dumps(diagnosis.to_dict(), indent=2)


def split_text(verdict: Verdict) -> str:
    """ "data 5% · forward 30% · ..." for the parts that hold any time."""
    return " · ".join(f"{part} {share:.0%}" for part, share in verdict.split.items() if share >= 0.005)


def _body(item: Verdict | Finding, facts: list[tuple[str, str]], fix_label: str) -> Any:
    """Claim, facts (text, style), evidence, fix and the top call sites of a verdict or finding."""
    from rich.text import Text

    body = Text()
    body.append(item.claim, style="bold")
    for text, style in facts:
        body.append(f"\n{text}", style=style)
    for line in item.evidence:
        body.append(f"\n  - {line}")
    body.append(f"\n{fix_label}: ", style="green")
    body.append(item.fix)
    if item.call_sites:
        body.append("\nat: ", style="green")
        body.append("; ".join(site_text(s) for s in item.call_sites[:3]))
    return body


def verdict_panel(verdict: Verdict) -> Any:
    from rich.panel import Panel

    facts: list[tuple[str, str]] = []
    if verdict.split:
        step = f"{verdict.step_s * 1e3:.2f} ms" if verdict.step_s is not None else "?"
        facts.append((f"steady-state step {step}: {split_text(verdict)}", ""))
    if verdict.device_busy_pct is not None:
        facts.append((f"GPU busy {verdict.device_busy_pct:.0f}%", ""))
    facts.append((f"judged on: {verdict.window}", "dim"))
    body = _body(verdict, facts, "what to do")
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
        table.add_row(Text(f.severity, style=_SEVERITY_STYLE.get(f.severity, "")), f.id, _body(f, [], "fix"))
    return Group(verdict_panel(diagnosis.verdict), table)
