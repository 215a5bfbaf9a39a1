"""The data model of a diagnosis: what the rules produce and every renderer (terminal table,
JSON, HTML report, comparison) consumes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("high", "medium", "low", "info")


@dataclass(frozen=True)
class CallSite:
    file: str
    line: int
    count: int
    seconds: float


@dataclass(frozen=True)
class Finding:
    id: str  # rule id: sync-bound, input-bound, device-idle, lazy-graph, warmup, throttling
    severity: str  # one of SEVERITIES
    claim: str  # one line
    evidence: list[str]  # numbers that back the claim, one per line
    fix: str  # one or two sentences
    call_sites: list[CallSite] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
