"""What every telemetry source is: a small class that says whether it can run here (`probe`) and,
each sampling cycle, what it measured (`read`).

A source never raises out of `probe`: whatever stops it (no driver, no permission, wrong OS) is
an `unavailable` status with the reason and, where there is one, the command that fixes it.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from dataclasses import dataclass

# One measurement: (perf_counter_ns when it was true, metric name, value).
Reading = tuple[int, str, float]

# metric name (or fnmatch pattern such as "core.*.active_pct") -> (unit, description)
MetricTable = dict[str, tuple[str, str]]


@dataclass(frozen=True)
class SourceStatus:
    ok: bool
    reason: str = ""
    fix: str = ""

    def label(self) -> str:
        """The form run.json keeps: "ok" or "unavailable: <reason>"."""
        return "ok" if self.ok else f"unavailable: {self.reason}"


OK = SourceStatus(True)


def unavailable(reason: str, fix: str = "") -> SourceStatus:
    return SourceStatus(False, reason, fix)


@dataclass(frozen=True)
class SourceConfig:
    """What a source is told: the sampling interval and the process whose use it measures (the
    training process, never the sampler itself)."""

    interval_ms: int
    target_pid: int


class Source(ABC):
    """One kind of hardware reading. Lifecycle: `probe()` once; if ok, `read()` each cycle, the
    last time with `final=True`; `close()` always (also after a failed probe)."""

    name: str = ""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        # Filled by probe() where the names depend on the machine (GPUs, cores, RAPL domains).
        self.metrics: MetricTable = {}

    @abstractmethod
    def probe(self) -> SourceStatus: ...

    @abstractmethod
    def read(self, now_ns: int, final: bool = False) -> list[Reading]:
        """Readings since the last call; `now_ns` is perf_counter_ns taken just before. `final`
        marks the last call, for readings taken only at the end (NVML's energy counter)."""

    @abstractmethod
    def close(self) -> None:
        """Releases what probe() acquired (a child process, a library handle)."""


def describe(metrics: MetricTable, metric: str) -> tuple[str, str] | None:
    """(unit, description) of `metric`: an exact entry, else the first matching pattern."""
    if metric in metrics:
        return metrics[metric]
    for pattern, entry in metrics.items():
        if fnmatch.fnmatchcase(metric, pattern):
            return entry
    return None
