"""A run-directory builder for the diagnosis tests: spans, telemetry, stack samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnprof.reports.findings import Finding
from cnnprof.traces import schema
from cnnprof.traces.reader import RunData
from cnnprof.traces.writer import write_json, write_table

MS = 1_000_000
S = 1_000_000_000

BACKENDS = {
    "torch_cuda": ("torch", "cuda"),
    "torch_cpu": ("torch", "cpu"),
    "torch_mps": ("torch", "mps"),
    "mlx_gpu": ("mlx", "gpu"),
    "mlx_cpu": ("mlx", "cpu"),
}

USER = "/home/u/train.py"


class Run:
    """Builds a run directory: spans, telemetry, samples, then `.load()`."""

    def __init__(self, tmp_path: Path, backend: str = "torch_cuda", **config: Any) -> None:
        self.dir = tmp_path / f"run-{backend}"
        self.dir.mkdir()
        framework, device = BACKENDS[backend]
        self.meta = {
            "schema_version": schema.SCHEMA_VERSION,
            "kind": "train",
            "status": "complete",
            "t0_perf_ns": 0,
            "backend": {"name": backend, "framework": framework, "device": device},
            "config": {"loop": "seed", "sync": "batch", "batch_size": 512, **config},
        }
        self.spans: list[dict[str, Any]] = []
        self.telemetry: list[tuple[int, str, str, float]] = []
        self.frames: list[dict[str, Any]] = []
        self.stacks: list[list[int]] = []
        self.samples: list[tuple[int, int, int]] = []

    def span(self, kind: str, name: str, start: int, end: int, caller: str | None = None, **attrs: Any) -> Run:
        self.spans.append(
            {
                "kind": kind,
                "name": name,
                "start_ns": start,
                "end_ns": end,
                "caller": caller,
                "attrs": json.dumps(attrs) if attrs else None,
            }
        )
        return self

    def epochs(self, n: int, seconds: float, batches: int = 0, batch_s: float | None = None) -> Run:
        """n back-to-back epochs, each one train phase of `batches` equal train batches."""
        t = 0
        for e in range(n):
            length = int(seconds * S)
            self.span("epoch", f"epoch {e}", t, t + length)
            self.span("train", "train", t, t + length)
            if batches:
                step = int((batch_s or seconds / batches) * S)
                for b in range(batches):
                    self.span("batch", "train", t + b * step, t + (b + 1) * step)
            t += length
        return self

    def tel(self, metric: str, values: list[tuple[int, float]], source: str = "nvml") -> Run:
        self.telemetry += [(t, source, metric, v) for t, v in values]
        return self

    def frame(self, function: str, file: str, line: int, library: bool = False, first_line: int | None = None) -> int:
        self.frames.append(
            {"function": function, "file": file, "line": line, "first_line": first_line or line, "library": library}
        )
        return len(self.frames) - 1

    def sample(self, stack: list[int], t: int, dt: int) -> Run:
        if stack not in self.stacks:
            self.stacks.append(stack)
        self.samples.append((t, dt, self.stacks.index(stack)))
        return self

    def load(self) -> RunData:
        end = max([s["end_ns"] for s in self.spans] + [t + dt for t, dt, _ in self.samples] + [1])
        self.meta["duration_ns"] = end
        write_json(self.dir / schema.RUN_JSON, self.meta)
        cols = {k: [s[k] for s in self.spans] for k in ("kind", "name", "start_ns", "end_ns", "caller", "attrs")}
        write_table(self.dir / schema.SPANS, cols, schema.SPANS_SCHEMA)
        if self.telemetry:
            t, src, metric, value = zip(*self.telemetry, strict=True)
            write_table(
                self.dir / schema.TELEMETRY,
                {"t_ns": list(t), "source": list(src), "metric": list(metric), "value": list(value)},
                schema.TELEMETRY_SCHEMA,
            )
        if self.samples:
            t, dt, sid = zip(*self.samples, strict=True)
            write_table(
                self.dir / schema.SAMPLES,
                {"t_ns": list(t), "dt_ns": list(dt), "stack_id": list(sid)},
                schema.SAMPLES_SCHEMA,
            )
            write_json(self.dir / schema.STACKS, {"frames": self.frames, "stacks": self.stacks})
        return RunData(self.dir)


def by_id(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.id == rule]


def syncs_every(run: Run, period_ms: float, sync_ms: float, total_s: float, device: str, line: int = 42) -> Run:
    """A sync of `sync_ms` every `period_ms`, from the run's start."""
    t = 0
    while t + int(sync_ms * MS) <= int(total_s * S):
        run.span("sync", "Tensor.item", t, t + int(sync_ms * MS), caller=f"{USER}:{line}", device=device)
        t += int(period_ms * MS)
    return run


def util(total_s: float, busy: float, idle: float | None = None, period_ms: int = 10, syncs: Run | None = None) -> list:
    """GPU utilisation readings every period: `idle` while a sync span is open (if given), else `busy`."""
    spans = [(s["start_ns"], s["end_ns"]) for s in (syncs.spans if syncs else []) if s["kind"] == "sync"]
    out = []
    for i in range(1, int(total_s * 1000 / period_ms) + 1):
        t = i * period_ms * MS
        in_sync = any(a <= t - period_ms * MS // 2 < b for a, b in spans)
        out.append((t, idle if (idle is not None and in_sync) else busy))
    return out


def train_steps(
    run: Run,
    n: int,
    *,
    start_ms: float = 0.0,
    data_ms: float = 1.0,
    fwd_ms: float = 3.0,
    bwd_ms: float = 4.0,
    opt_ms: float = 1.0,
    sync_ms: float = 0.0,
    device: str = "cuda",
    first_ms: float | None = None,
) -> float:
    """n back-to-back training steps as the step hooks record them (data, backward, optimizer
    hooks, then a sync after the update), with their `step` spans; returns the end in ms. The
    first step takes `first_ms` (a compile) when given, all of it before its backward."""
    t = start_ms
    for i in range(n):
        extra = (first_ms - (data_ms + fwd_ms + bwd_ms + opt_ms + sync_ms)) if (i == 0 and first_ms) else 0.0
        begin = t
        a = t + data_ms
        b = a + fwd_ms + extra
        c = b + bwd_ms
        d = c + opt_ms
        run.span("hook", "data", int(begin * MS), int(a * MS))
        run.span("hook", "backward", int(b * MS), int(c * MS))
        run.span("hook", "optimizer", int(c * MS), int(d * MS))
        end = d
        if sync_ms:
            run.span("sync", "Tensor.item", int(d * MS), int((d + sync_ms) * MS), caller=f"{USER}:77", device=device)
            end = d + sync_ms
        run.span("step", "train", int(begin * MS), int(end * MS))
        t = end
    return t
