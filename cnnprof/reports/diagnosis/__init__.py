"""Diagnosis: one verdict per run and the findings that support or refine it.

Rules read one shared, read-only view of a run directory (context.RunView: spans, syncs by
device, steps and their steady state, stack samples, telemetry), never torch or mlx, so a report
can be rebuilt anywhere. Each rule is one module with its thresholds as named constants and the
reason for each; adding a rule is adding a module and a line in `RULES`. The verdict
(verdict.py) is judged after the rules, on the same steady-state window, and reuses their
evidence. docs/ARCHITECTURE.md says where this sits.
"""

from __future__ import annotations

from collections.abc import Callable

from ...traces.reader import RunData
from ..findings import SEVERITIES, SEVERITY_RANK, Diagnosis, Finding
from .context import RunView
from .cpu_fallback import rule_cpu_fallback
from .device_idle import rule_device_idle
from .gpu_clock import rule_gpu_clock_sources
from .input import rule_input
from .lazy_graph import rule_lazy_graph
from .recompiles import rule_recompiles
from .render import diagnosis_json, diagnosis_table
from .sync import rule_sync
from .throttling import rule_throttling
from .verdict import judge
from .warmup import rule_warmup

Rule = Callable[[RunView], list[Finding]]

RULES: tuple[Rule, ...] = (
    rule_sync,
    rule_input,
    rule_device_idle,
    rule_lazy_graph,
    rule_warmup,
    rule_throttling,
    rule_gpu_clock_sources,
    rule_recompiles,
    rule_cpu_fallback,
)

__all__ = ["RULES", "Diagnosis", "RunView", "diagnose", "diagnosis_json", "diagnosis_table"]


def _error(what: str, exc: Exception) -> Finding:
    return Finding(
        "diagnosis-error",
        "info",
        f"{what} could not run on this run directory",
        [f"{type(exc).__name__}: {exc}"],
        "Report this as a cnnprof bug, with the run directory.",
    )


def diagnose(run: RunData) -> Diagnosis:
    """The verdict and all findings for one run, most severe first."""
    ctx = RunView(run)
    findings: list[Finding] = []
    for rule in RULES:
        try:
            findings += rule(ctx)
        except Exception as exc:  # one broken rule must not cost the others (or the report)
            findings.append(_error(f"rule {rule.__name__}", exc))
    findings.sort(key=lambda f: SEVERITY_RANK.get(f.severity, len(SEVERITIES)))
    return Diagnosis(judge(ctx, findings), findings)
