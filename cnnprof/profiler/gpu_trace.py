"""A GPU-side trace of a few steady training steps on CUDA: when the GPU really ran (kernels,
copies and memsets from CUPTI, through `torch.profiler`), for the estimates NVML cannot give.

NVML's utilisation says whether a kernel ran during each ~1/6 s; it counts the GPU's own gaps
between dependent kernels as idle and cannot tell when, after a sync returned, the GPU got its
next work. What a per-step sync costs is exactly that: the GPU idle while the host, released by
the sync, sends the next work (reports/diagnosis/sync.py). So, once per run, after `START_AFTER`
training steps (optimizer steps; or CUDA-graph replays where a captured step calls no optimizer
hook), `torch.profiler` records CUDA activity only (no CPU op events, so the host pays no per-op
cost) for `WINDOW_STEPS` steps or `WINDOW_S` seconds, whichever ends first. The window starts
and ends with a drain of the GPU's queue (a stream sync, which the sync hooks do not record: two
per run), so that it holds exactly the traced steps' GPU work even where the host runs far ahead
of the GPU (a replayed CUDA graph per step). The GPU's busy intervals (the union over streams),
on the run's clock, and its heaviest kernels go to `gpu_trace.json` (traces/gpu_trace.py) right
then, so a run killed later keeps them.

We use torch.profiler rather than CUPTI directly: it ships with every CUDA build of torch and
converts CUPTI's timestamps to the host's wall clock (which we shift to perf_counter). Starting
it costs about a second the first time (CUPTI's set-up): that step is one outlier the steady-
state window leaves out. Not exercised here (no CUDA): the CUPTI capture itself; the trigger,
the window and the conversion of events are tested with a stand-in profiler, and the event
reading with torch.profiler's real CPU events."""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..traces.gpu_trace import GPU_TRACE, write_gpu_trace
from .patching import Patcher, named

if TYPE_CHECKING:
    from .session import RunSession

START_AFTER = 30  # steps: past warm-up (compiles, cuDNN's autotuning) in the runs we measured
WINDOW_STEPS = 20
WINDOW_S = 3.0
TOP_KERNELS = 15

_now = time.perf_counter_ns


def busy_intervals(events: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The union of (start, end) intervals, sorted: when at least one GPU activity ran."""
    merged: list[list[int]] = []
    for start, end in sorted(events):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def device_events(profiler: Any) -> list[tuple[str, int, int]]:
    """(name, start_ns, end_ns) of every GPU-side activity in a stopped torch.profiler, on the
    host's wall clock (time.time_ns)."""
    from torch.autograd import DeviceType

    events = profiler.profiler.kineto_results.events()
    return [(e.name(), e.start_ns(), e.end_ns()) for e in events if e.device_type() != DeviceType.CPU]


def cuda_profiler() -> Any:
    """torch.profiler recording CUDA activity only."""
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CUDA])


class GpuTraceObserver:
    """The run observer (profiler/session.py's protocol): one trace window per run, on CUDA."""

    name = "gpu_trace"

    def __init__(
        self,
        make_profiler: Callable[[], Any] = cuda_profiler,
        read_events: Callable[[Any], list[tuple[str, int, int]]] = device_events,
        cuda_ready: Callable[[], bool] | None = None,
        capturing: Callable[[], bool] | None = None,
        drain: Callable[[], None] | None = None,
    ) -> None:
        self.make_profiler, self.read_events = make_profiler, read_events
        self.cuda_ready = cuda_ready or _cuda_in_use
        self.capturing = capturing or _capturing
        self.drain = drain or _drain
        self.patcher = Patcher()
        self.session: RunSession | None = None
        self.state = "waiting"  # waiting -> tracing -> written (or: failed, no cuda)
        self.steps = 0
        self.note: str | None = None
        self._handle: Any = None
        self._profiler: Any = None
        self._window_start = 0
        self._window_step = 0

    # -- the observer's protocol ----------------------------------------------------------------
    def start(self, session: RunSession) -> None:
        self.session = session
        if "torch" in sys.modules:
            self.patcher.guarded("torch", self._install)
        else:
            self.patcher.watch({"torch"}, lambda _name: self._install())

    def stop(self, session: RunSession) -> dict[str, Any]:
        if self.state == "tracing":
            self._finish()
        if self._handle is not None:
            self._handle.remove()
        self.patcher.restore()
        result: dict[str, Any] = {"state": self.state, "steps_seen": self.steps}
        if self.state == "written":
            result["file"] = GPU_TRACE
        if self.note:
            result["note"] = self.note
        return result

    # -- the trigger ---------------------------------------------------------------------------
    def _install(self) -> None:
        torch = sys.modules["torch"]
        optim = importlib.import_module("torch.optim.optimizer")
        self._handle = optim.register_optimizer_step_post_hook(lambda *_args: self._on_step())
        graphs = getattr(getattr(torch, "cuda", None), "graphs", None)
        if graphs is not None and hasattr(graphs, "CUDAGraph"):
            self.patcher.patch(graphs.CUDAGraph, "replay", "CUDAGraph.replay", self._replay_wrapper)

    def _replay_wrapper(self, name: str, original: Any) -> Any:
        def replay(graph: Any, *args: Any, **kwargs: Any) -> Any:
            out = original(graph, *args, **kwargs)
            self._on_step()  # a captured step's optimizer hook never runs: its replay is the step
            return out

        return named(replay, original, name)

    def _on_step(self) -> None:
        """After each step (an optimizer step or a graph replay: a loop with both counts twice, and
        the window is cut by WINDOW_S). Never raises into the training loop: a failure ends the
        trace, noted. Steps inside a CUDA-graph capture are not counted: no profiler starts there."""
        if self.state not in ("waiting", "tracing"):
            return
        try:
            if self.capturing():
                return
            self.steps += 1
            if self.state == "waiting" and self.steps >= START_AFTER:
                self._begin()
            elif self.state == "tracing" and (
                self.steps - self._window_step >= WINDOW_STEPS or _now() - self._window_start >= WINDOW_S * 1e9
            ):
                self._finish()
        except Exception as exc:  # noqa: BLE001 - the user's training must go on
            self.state, self.note = "failed", f"{type(exc).__name__}: {exc}"[:300]
            if self._profiler is not None:
                with contextlib.suppress(Exception):
                    self._profiler.stop()
                self._profiler = None

    def _begin(self) -> None:
        if not self.cuda_ready():
            self.state = "no cuda"
            return
        self._profiler = self.make_profiler()
        self.drain()
        self._profiler.start()
        self._window_start, self._window_step = _now(), self.steps
        self.state = "tracing"

    def _finish(self) -> None:
        self.drain()
        end = _now()
        self._profiler.stop()
        wall_minus_perf = _wall_minus_perf()
        events = self.read_events(self._profiler)
        self._profiler = None
        assert self.session is not None
        t0 = self.session.t0_perf_ns
        shifted = [(name, s - wall_minus_perf - t0, e - wall_minus_perf - t0) for name, s, e in events]
        by_name: dict[str, list[int]] = {}
        for name, s, e in shifted:
            total = by_name.setdefault(name, [0, 0])
            total[0] += e - s
            total[1] += 1
        top = sorted(by_name.items(), key=lambda item: -item[1][0])[:TOP_KERNELS]
        write_gpu_trace(
            self.session.run_dir,
            {
                "source": "CUPTI via torch.profiler (CUDA activity only)",
                "steps": self.steps - self._window_step,
                "window_ns": [self._window_start - t0, end - t0],
                "activities": len(shifted),
                "busy_ns": busy_intervals((s, e) for _, s, e in shifted),
                "top": [[name[:160], total, count] for name, (total, count) in top],
            },
        )
        self.state = "written"


def _cuda_in_use() -> bool:
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    return bool(cuda is not None and cuda.is_available() and cuda.is_initialized())


def _capturing() -> bool:
    cuda = getattr(sys.modules.get("torch"), "cuda", None)
    return bool(cuda is not None and cuda.is_available() and cuda.is_current_stream_capturing())


def _drain() -> None:
    """Waits for the GPU's queue (the current stream's: where the training's work goes)."""
    sys.modules["torch"].cuda.current_stream().synchronize()


def _wall_minus_perf() -> int:
    """time.time_ns() - perf_counter_ns(), read together: torch.profiler's events are on the wall
    clock. The tightest of a few readings (a preemption between the two clock reads would shift
    every event by its length)."""
    best: tuple[int, int] | None = None
    for _ in range(5):
        before = _now()
        wall = time.time_ns()
        after = _now()
        if best is None or after - before < best[0]:
            best = (after - before, wall - (before + after) // 2)
    assert best is not None
    return best[1]
