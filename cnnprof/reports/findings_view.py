"""The diagnosis as HTML (guarded: a rule that fails must not cost the page): the run's verdict,
and each finding a collapsible block with its evidence, fix and call sites."""

from __future__ import annotations

from ..traces.reader import RunData
from .findings import SEVERITY_RANK, Diagnosis, Finding
from .text import esc


def run_diagnosis(run: RunData) -> tuple[Diagnosis | None, str | None]:
    """The diagnosis of a run, or why there is none (a rule that fails must not cost the report)."""
    from .diagnosis import diagnose

    try:
        return diagnose(run), None
    except Exception as exc:  # the report is worth more than the diagnosis
        return None, f"the diagnosis failed ({type(exc).__name__}: {exc}); the rest of the report is complete"


def run_findings(run: RunData) -> tuple[list[Finding], str | None]:
    diagnosis, why_none = run_diagnosis(run)
    return (diagnosis.findings if diagnosis else []), why_none


def verdict_html(diagnosis: Diagnosis | None) -> str:
    """The run's verdict: what bounds its steady-state step, and the step's time split."""
    if diagnosis is None:
        return ""
    v = diagnosis.verdict
    split = " · ".join(f"{esc(part)} {share:.0%}" for part, share in v.split.items() if share >= 0.005)
    facts = []
    if v.step_s is not None:
        facts.append(f"steady-state step {v.step_s * 1e3:,.2f} ms" + (f": {split}" if split else ""))
    if v.device_busy_pct is not None:
        facts.append(f"GPU busy {v.device_busy_pct:.0f}%")
    evidence = "".join(f"<li>{esc(e)}</li>" for e in v.evidence)
    return (
        f"<div class='verdict'><p><span class='badge'>{esc(v.id)}</span> <b>{esc(v.claim)}</b></p>"
        + "".join(f"<p class='mono'>{f}</p>" for f in facts)
        + f"<p class='muted'>judged on {esc(v.window)}</p>"
        + (f"<ul class='evidence'>{evidence}</ul>" if evidence else "")
        + f"<p class='fix'><b>What to do:</b> {esc(v.fix)}</p></div>"
    )


def findings_html(findings: list[Finding], why_none: str | None, compact: bool = False) -> str:
    if why_none:
        return f'<p class="muted">{esc(why_none)}</p>'
    if not findings:
        return (
            '<p class="muted">No bottleneck found by the rules '
            "(sync, input, device idle, lazy graph, warm-up, throttling).</p>"
        )
    parts = []
    for f in findings:
        sev = f.severity if f.severity in SEVERITY_RANK else "info"
        evidence = "".join(f"<li>{esc(e)}</li>" for e in f.evidence)
        sites = ""
        if f.call_sites and not compact:
            # A site counts calls (sync hooks) or stack samples: its `unit` says which.
            units = [c.unit for c in f.call_sites]
            one_unit = len(set(units)) == 1
            rows = "".join(
                f"<tr><td class='mono'>{esc(c.file)}:{esc(c.line)}</td><td class='num'>{c.count:,}"
                f"{'' if one_unit else ' ' + esc(unit)}</td><td class='num'>{c.seconds:,.3f}</td></tr>"
                for c, unit in zip(f.call_sites, units)
            )
            sites = (
                f"<table class='sites'><thead><tr><th>call site</th><th>{esc(units[0]) if one_unit else 'count'}"
                f"</th><th>seconds</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        body = (
            (f"<ul class='evidence'>{evidence}</ul>" if evidence else "")
            + (f"<p class='fix'><b>Fix:</b> {esc(f.fix)}</p>" if f.fix else "")
            + sites
        )
        parts.append(
            f"<details class='finding sev-{esc(sev)}'{' open' if sev == 'high' and not compact else ''}>"
            f"<summary><span class='badge sev-{esc(sev)}'>{esc(sev)}</span> <span class='fid'>{esc(f.id)}</span> "
            f"{esc(f.claim)}</summary>{body}</details>"
        )
    return "".join(parts)
