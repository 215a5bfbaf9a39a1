"""The diagnosis of a job directory: the job rules over all ranks (a registry tuple, one module per
rule), the single-run rules on each rank, and the job's verdict, taken from one rank's diagnosis.

Which rank: the slow rank when `rank-imbalance` fires (the others only wait for it, so its verdict
says what limits the job), else rank 0. Where the run diagnosis has a verdict (`diagnose(run).verdict`)
it is that rank's; until then `verdict` is None and the job's findings stand alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...traces.job import JobData
from ..findings import SEVERITIES, Finding
from .comm_bound import rule_comm_bound
from .job_context import JobContext
from .rank_imbalance import rule_rank_imbalance, slow_rank

JOB_RULES: tuple[Callable[[JobContext], list[Finding]], ...] = (rule_rank_imbalance, rule_comm_bound)
_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class JobDiagnosis:
    findings: list[Finding]  # the job rules'
    per_rank: dict[int, list[Finding]] = field(default_factory=dict)  # each rank's own findings
    verdict_rank: int | None = None
    verdict_why: str = ""
    verdict: Any = None  # the verdict rank's diagnose(run).verdict, where the diagnosis has one

    def to_json(self) -> dict[str, Any]:
        verdict = self.verdict
        if hasattr(verdict, "to_dict"):
            verdict = verdict.to_dict()
        return {
            "verdict": {"rank": self.verdict_rank, "why": self.verdict_why, "verdict": verdict},
            "findings": [f.to_dict() for f in self.findings],
            "ranks": {str(r): [f.to_dict() for f in fs] for r, fs in self.per_rank.items()},
        }


def _apply(rule: Callable[[JobContext], list[Finding]], ctx: JobContext) -> list[Finding]:
    """One rule's findings; a rule that breaks gives a finding saying so, never costs the others."""
    try:
        return rule(ctx)
    except Exception as exc:
        from . import _error

        return [_error(f"rule {rule.__name__}", exc)]


def diagnose_job(job: JobData) -> JobDiagnosis:
    from . import _error, diagnose

    ctx = JobContext(job)
    findings = sorted(
        (f for rule in JOB_RULES for f in _apply(rule, ctx)), key=lambda f: _ORDER.get(f.severity, len(SEVERITIES))
    )
    result = JobDiagnosis(findings)
    verdicts: dict[int, Any] = {}
    for rank, run in job.ranks.items():
        try:
            out = diagnose(run)
        except Exception as exc:
            result.per_rank[rank] = [_error(f"the diagnosis of rank {rank}", exc)]
            continue
        result.per_rank[rank] = list(getattr(out, "findings", out))
        verdicts[rank] = getattr(out, "verdict", None)
    try:
        slow = slow_rank(ctx)
    except Exception:  # its rule has reported the error already
        slow = None
    if slow is not None:
        result.verdict_rank = slow[0].rank
        result.verdict_why = "the slow rank (rank-imbalance): the others wait for it"
    elif job.ranks:
        result.verdict_rank = 0 if 0 in job.ranks else min(job.ranks)
        result.verdict_why = f"rank {result.verdict_rank} (no rank is much slower than the others)"
    result.verdict = verdicts.get(result.verdict_rank) if result.verdict_rank is not None else None
    return result


def job_json(diagnosis: JobDiagnosis) -> str:
    return json.dumps(diagnosis.to_json(), indent=2)
