"""The data model of a diagnosis: what the rules produce and every renderer (terminal table,
JSON, HTML report, comparison) consumes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("high", "medium", "low", "info")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
# What a call site's `count` counts: calls (from hooked spans) or stack samples.
CALLS, SAMPLES = "calls", "samples"
VERDICTS = ("compute-bound", "input-bound", "sync-bound", "launch-bound", "setup-heavy")


@dataclass(frozen=True)
class CallSite:
    file: str
    line: int
    count: int
    seconds: float
    unit: str = CALLS  # CALLS or SAMPLES


@dataclass(frozen=True)
class Finding:
    id: str  # rule id: sync-bound, input-bound, device-idle, lazy-graph, warmup, throttling, ...
    severity: str  # one of SEVERITIES
    claim: str  # one line
    evidence: list[str]  # numbers that back the claim, one per line
    fix: str  # one or two sentences
    call_sites: list[CallSite] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The one answer per run: what bounds its steady-state step, with the step's time split."""

    id: str  # one of VERDICTS
    claim: str  # one line
    evidence: list[str]
    fix: str
    window: str  # what was judged ("412 steady-state steps after 2 warm-up steps", ...)
    step_s: float | None  # median steady-state step time
    split: dict[str, float]  # part -> share of the steady-state step time (0..1)
    device_busy_pct: float | None  # the accelerator's busy share over the window, where measured
    call_sites: list[CallSite] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Diagnosis:
    verdict: Verdict
    findings: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.to_dict(), "findings": [f.to_dict() for f in self.findings]}
