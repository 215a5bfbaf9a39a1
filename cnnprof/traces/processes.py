"""The run's child processes (DataLoader workers, Pool workers, other multiprocessing children):
their list from run.json's "processes" section and each one's stack samples, written by
profiler/children.py under `processes/<pid>/` in the main process's format (samples.parquet,
stacks.json; times on the run's clock).

A `ProcessSamples` has `samples` and `stacks` like RunData, so the flame and call-tree helpers
(traces/flame.py) take either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from . import schema

SECTION = "processes"  # run.json's section (the ChildObserver's)


@dataclass
class ProcessSamples:
    pid: int
    role: str  # "dataloader worker 0", "pool worker", "child"
    info: dict[str, Any]  # what run.json says of it: ppid, start_method, start_ns, end_ns, samples, ...
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    stacks: dict[str, Any] = field(default_factory=lambda: {"frames": [], "stacks": []})

    @property
    def label(self) -> str:
        return f"{self.role} (pid {self.pid})"

    @property
    def cpu_pct(self) -> float | None:
        """Its CPU time over its sampled lifetime, % of one core (None when not recorded)."""
        cpu, start, end = self.info.get("cpu_s"), self.info.get("start_ns"), self.info.get("end_ns")
        if not isinstance(cpu, (int, float)) or not start or not end or end <= start:
            return None
        return 100.0 * cpu / ((end - start) / 1e9)


def child_processes(run: Any) -> list[ProcessSamples]:
    """The children of a run (a RunData), in the order they started; a child whose files are
    missing or unreadable is listed with no samples (and a note on the run)."""
    section = run.record.section(SECTION) if hasattr(run, "record") else {}
    out = []
    for info in sorted(section.get("children") or [], key=lambda c: c.get("start_ns") or 0):
        pid = int(info.get("pid") or 0)
        proc = ProcessSamples(pid, str(info.get("role") or "child"), info)
        folder = Path(run.path) / schema.PROCESSES / str(pid)
        try:
            proc.samples = pq.read_table(folder / schema.SAMPLES).to_pandas()
            proc.stacks = json.loads((folder / schema.STACKS).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            run.notes.append(f"process {pid} ({proc.role}): samples unreadable ({type(exc).__name__}); left out")
            proc.samples = pd.DataFrame()
        out.append(proc)
    return out
