"""`gpu_trace.json`: when the GPU really ran during a few traced steps (profiler/gpu_trace.py).

    {"source": "...", "steps": 20, "window_ns": [start, end], "activities": 2400,
     "busy_ns": [[start, end], ...],      # union of kernels, copies and memsets, sorted
     "top": [[name, total_ns, count], ...]}  # the activities that took longest, summed by name

Times are ns on the run's clock (perf_counter_ns relative to run.json's t0_perf_ns). Plain JSON,
no pyarrow: the profiler writes it mid-run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GPU_TRACE = "gpu_trace.json"


def write_gpu_trace(run_dir: Path, doc: dict[str, Any]) -> None:
    """Written whole or not at all (a kill mid-write leaves no half file)."""
    path = Path(run_dir) / GPU_TRACE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class GpuTrace:
    source: str
    steps: int
    window: tuple[int, int]
    busy: np.ndarray  # (n, 2) int64, sorted, disjoint
    top: list[tuple[str, int, int]]  # name, total ns, count

    @property
    def span_ns(self) -> tuple[int, int]:
        """From the first activity's start to the last's end (the edges of the window hold no
        GPU work that the window could judge)."""
        if not len(self.busy):
            return self.window
        return int(self.busy[0, 0]), int(self.busy[-1, 1])

    @property
    def busy_share(self) -> float | None:
        start, end = self.span_ns
        if end <= start:
            return None
        return float((self.busy[:, 1] - self.busy[:, 0]).sum()) / (end - start)

    @property
    def busy_per_step_ns(self) -> float | None:
        """GPU busy time per traced step (the window is drained at both ends, so it holds
        exactly the traced steps' work)."""
        if self.steps <= 0 or not len(self.busy):
            return None
        return float((self.busy[:, 1] - self.busy[:, 0]).sum()) / self.steps

    def starts_after(self, t_ns: int) -> bool:
        return self.window[0] >= t_ns

    def gaps(self) -> np.ndarray:
        """(n, 2): the idle intervals between consecutive busy ones."""
        if len(self.busy) < 2:
            return np.zeros((0, 2), dtype=np.int64)
        return np.stack([self.busy[:-1, 1], self.busy[1:, 0]], axis=1)


def read_gpu_trace(run_dir: Path | str) -> GpuTrace | None:
    """The run's GPU trace, or None when it has none or the file is not one (a note is the
    caller's: a run without CUDA never has one)."""
    path = Path(run_dir) / GPU_TRACE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        busy = np.asarray(doc.get("busy_ns") or [], dtype=np.int64).reshape(-1, 2)
        window = doc["window_ns"]
        top = [(str(n), int(t), int(c)) for n, t, c in doc.get("top") or []]
        return GpuTrace(
            str(doc.get("source", "")), int(doc.get("steps") or 0), (int(window[0]), int(window[1])), busy, top
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
