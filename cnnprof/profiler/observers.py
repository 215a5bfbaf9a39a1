"""The telemetry sampler as a run observer (profiler/session.py's Observer protocol), and the
one list of observers every way into a run gets (`cnnprof run`, `cnnprof profile`, the API).

The stack profiler and the sync hooks are observers of their own (stacks.py, sync.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import RunSession
    from .telemetry.launcher import SamplerHandle


class TelemetryObserver:
    """Runs the sampler process for the session's lifetime, then says what its stream holds (the
    first reader turns the stream into telemetry.parquet and adds each epoch's training energy to
    the per-epoch metrics: traces/tables.py)."""

    name = "telemetry"

    def __init__(self, sources: str, interval_ms: int) -> None:
        self.sources = sources
        self.interval_ms = interval_ms
        self.handle: SamplerHandle | None = None

    def spawn(self, run_dir: Path) -> None:
        """Starts the sampler process now, before the session (whose run directory `run_dir` must
        be): its start-up then overlaps the rest of cnnprof's (benchmarks/fixed_cost.py)."""
        from .telemetry import spawn_sampler

        self.handle = spawn_sampler(run_dir, self.sources, self.interval_ms)

    def start(self, session: RunSession) -> None:
        if self.handle is None:
            self.spawn(session.run_dir)
        assert self.handle is not None
        self.handle.attach(session.t0_perf_ns)

    def stop(self, session: RunSession) -> dict[str, Any]:
        assert self.handle is not None
        result = self.handle.stop().to_json()
        result["interval_ms"] = self.interval_ms
        return result


def standard_observers(
    *,
    profiler: str,
    profile_interval_ms: float,
    telemetry: str,
    telemetry_interval_ms: int,
    spawned: TelemetryObserver | None = None,
    gpu_trace: bool = True,
) -> list[Any]:
    """The observers of a run from its options. Started in this order, stopped in reverse: the
    sampler outlives the hooks and the stack profiler, so it sees the whole run. A wrong source
    name or interval is a `UserError` here, before the run directory exists. `spawned` is a
    telemetry observer already started with `spawn` (`cnnprof profile` starts it first);
    `gpu_trace`: the CUPTI trace of a few steps on CUDA (gpu_trace.py)."""
    from .children import ChildObserver
    from .fallback import FallbackObserver
    from .recompiles import CompileObserver
    from .stacks import StackObserver
    from .steps import StepHookObserver
    from .sync import SyncHookObserver
    from .telemetry.registry import check_interval, parse_sources

    parse_sources(telemetry)
    check_interval(telemetry_interval_ms)
    sampler = spawned or TelemetryObserver(telemetry, telemetry_interval_ms)
    observers: list[Any] = [sampler, SyncHookObserver(), StepHookObserver()]
    if profiler != "none":
        observers.append(StackObserver(profiler, profile_interval_ms))
        observers.append(ChildObserver(profile_interval_ms))
    observers.append(CompileObserver())
    observers.append(FallbackObserver())
    if gpu_trace:
        from .gpu_trace import GpuTraceObserver

        observers.append(GpuTraceObserver())
    return observers
