"""The GPU-side trace of a few steps (profiler/gpu_trace.py, traces/gpu_trace.py) and the sync
cost it gives (reports/diagnosis/sync_cost.py).

CUPTI cannot run here (no CUDA): the observer is driven by real torch optimizer steps with a
stand-in profiler whose events are on the wall clock as torch.profiler's are; torch.profiler's
real event API is read on CPU events. The estimate is checked on constructed traces whose idle
time is known by construction."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from diagnosis_runs import MS, Run, by_id, train_steps, util

from cnnprof.profiler import gpu_trace as gt
from cnnprof.reports.diagnosis import diagnose
from cnnprof.reports.diagnosis.sync_cost import traced_sync_cost
from cnnprof.traces.gpu_trace import GPU_TRACE, GpuTrace, read_gpu_trace, write_gpu_trace

US = 1_000


def test_busy_intervals_are_the_union_over_streams() -> None:
    assert gt.busy_intervals([(5, 9), (0, 2), (1, 3), (9, 10), (12, 13)]) == [[0, 3], [5, 10], [12, 13]]
    assert gt.busy_intervals([]) == []


class StandInProfiler:
    """Records start / stop; its events are two kernels per step, on the wall clock."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def start(self) -> None:
        self.log.append("start")
        self.t_start = time.time_ns()

    def stop(self) -> None:
        self.log.append("stop")
        self.t_stop = time.time_ns()


def _train(steps: int) -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([weight], lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        (weight * 2).sum().backward()
        opt.step()


def _observer(tmp_path: Path, log: list[str], **kw: object) -> gt.GpuTraceObserver:
    def read(p: StandInProfiler) -> list[tuple[str, int, int]]:
        mid = (p.t_start + p.t_stop) // 2
        return [
            ("gemm", mid, mid + 300 * US),
            ("relu", mid + 100 * US, mid + 400 * US),
            ("gemm", mid + 500 * US, mid + 600 * US),
        ]

    options = {"cuda_ready": lambda: True, "capturing": lambda: False, "drain": lambda: log.append("drain"), **kw}
    obs = gt.GpuTraceObserver(make_profiler=lambda: StandInProfiler(log), read_events=read, **options)  # type: ignore[arg-type]
    session = SimpleNamespace(run_dir=tmp_path, t0_perf_ns=time.perf_counter_ns())
    obs.start(session)  # type: ignore[arg-type]
    return obs


def test_one_window_after_the_warm_up_steps_written_on_the_runs_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gt, "WINDOW_S", 3600.0)  # the window ends by its step count, however slow the machine
    log: list[str] = []
    obs = _observer(tmp_path, log)
    t0 = obs.session.t0_perf_ns  # type: ignore[union-attr]
    before = time.perf_counter_ns() - t0
    _train(gt.START_AFTER + gt.WINDOW_STEPS + 30)
    after = time.perf_counter_ns() - t0
    result = obs.stop(obs.session)  # type: ignore[arg-type]
    assert log == ["drain", "start", "drain", "stop"]  # one window, not one per step, drained at both ends
    assert (
        result["state"] == "written" and result["steps_seen"] == gt.START_AFTER + gt.WINDOW_STEPS
    )  # none counted after
    trace = read_gpu_trace(tmp_path)
    assert trace is not None and trace.steps == gt.WINDOW_STEPS
    assert before < trace.window[0] < trace.window[1] < after
    # the stand-in's kernels, shifted from the wall clock onto the run's: inside the window
    assert trace.busy.shape == (2, 2)
    assert trace.window[0] - 20 * MS < trace.busy[0, 0] < trace.window[1] + 20 * MS
    assert trace.busy[0, 1] - trace.busy[0, 0] == 400 * US
    assert trace.top[0][0] == "gemm" and trace.top[0][1:] == (400 * US, 2)


def test_no_window_without_cuda_in_a_capture_or_when_the_profiler_fails(tmp_path: Path) -> None:
    log: list[str] = []
    obs = _observer(tmp_path, log, cuda_ready=lambda: False)
    _train(gt.START_AFTER + 5)
    assert obs.stop(obs.session)["state"] == "no cuda" and log == []  # type: ignore[arg-type]

    obs = _observer(tmp_path, log, capturing=lambda: True)
    _train(gt.START_AFTER + 5)
    result = obs.stop(obs.session)  # type: ignore[arg-type]
    assert result["state"] == "waiting" and result["steps_seen"] == 0 and log == []

    def broken() -> StandInProfiler:
        raise RuntimeError("CUPTI_ERROR_NOT_INITIALIZED")

    obs = gt.GpuTraceObserver(make_profiler=broken, cuda_ready=lambda: True, capturing=lambda: False, drain=list)
    obs.start(SimpleNamespace(run_dir=tmp_path, t0_perf_ns=0))  # type: ignore[arg-type]
    _train(gt.START_AFTER + 5)  # the training goes on
    result = obs.stop(obs.session)  # type: ignore[arg-type]
    assert result["state"] == "failed" and "CUPTI_ERROR_NOT_INITIALIZED" in result["note"]
    assert not (tmp_path / GPU_TRACE).exists()


def test_the_hooks_are_gone_after_stop(tmp_path: Path) -> None:
    log: list[str] = []
    obs = _observer(tmp_path, log)
    obs.stop(obs.session)  # type: ignore[arg-type]
    _train(gt.START_AFTER + 5)
    assert obs.steps == 0 and log == []


def test_torch_profilers_event_api_as_read() -> None:
    """The real torch.profiler, on CPU events: the calls device_events makes exist, and CPU
    events are not GPU activity."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU])
    prof.start()
    torch.ones(64, 64) @ torch.ones(64, 64)
    prof.stop()
    events = prof.profiler.kineto_results.events()
    assert events and all(e.end_ns() >= e.start_ns() > 0 for e in events)
    assert abs(events[0].start_ns() - time.time_ns()) < 600 * 1e9  # the wall clock, as shifted
    assert gt.device_events(prof) == []


# -- the estimate ---------------------------------------------------------------------------------
STEADY = 1000 * 1000 * MS  # the steady state: the whole constructed run


def _trace(
    steps: int, step_ms: float, sync_ms: float, starve_ms: float, traced: range
) -> tuple[GpuTrace, pd.DataFrame, np.ndarray]:
    """`steps` steps of `step_ms` ending in a sync of `sync_ms`. In the `traced` steps the GPU
    starts `starve_ms` into each step, runs to the sync, then runs 1 ms kernels 2 us apart (fed)
    to the step's end. Returns the trace, the syncs and the steps."""
    busy, syncs, spans = [], [], []
    for i in range(steps):
        t = 100 * MS + int(i * step_ms * MS)
        sync_start, end = t + int((step_ms - sync_ms) * MS), t + int(step_ms * MS)
        spans.append((t, end))
        syncs.append((sync_start, end))
        if i not in traced:
            continue
        busy.append([t + int(starve_ms * MS), sync_start])
        k = sync_start
        while k < end:
            busy.append([k + 2 * US, min(k + MS, end)])
            k += MS
    frame = pd.DataFrame({"start_ns": [s for s, _ in syncs], "end_ns": [e for _, e in syncs]})
    window = (busy[0][0] - MS, busy[-1][1] + MS)
    trace = GpuTrace("test", len(traced), window, np.array(busy, dtype=np.int64), [])
    return trace, frame, np.array(spans, dtype=np.int64)


def test_the_saving_is_the_step_down_to_the_gpus_work_when_fed() -> None:
    trace, syncs, steps = _trace(100, step_ms=15, sync_ms=6, starve_ms=0.5, traced=range(40, 60))
    cost = traced_sync_cost(trace, syncs, steps, {})
    assert cost is not None and cost.steps == 20
    assert cost.fed_gap_ns == pytest.approx(2 * US)
    # per step: 14.5 ms of GPU work less the 6 fed gaps in the sync; 7 gaps a step (less the last)
    busy = 14.5 - 6 * 0.002
    gpu = busy + (7 * 20 - 1) / 20 * 0.002
    assert cost.busy_step_s * 1e3 == pytest.approx(busy)
    assert cost.gpu_step_s * 1e3 == pytest.approx(gpu)
    assert cost.step_s * 1e3 == pytest.approx(15)
    assert cost.share == pytest.approx((15 - gpu) / 15)
    assert cost.saving_s * 1e3 == pytest.approx(15 - gpu)


def test_the_saving_is_capped_by_the_hosts_wait_and_cnnprofs_sampling_is_taken_off() -> None:
    trace, syncs, steps = _trace(100, step_ms=15, sync_ms=0.2, starve_ms=3.0, traced=range(40, 60))
    cost = traced_sync_cost(trace, syncs, steps, {})
    assert cost is not None and cost.share == pytest.approx(0.2 / 15)  # the host waited 0.2 ms a step

    trace, syncs, steps = _trace(100, step_ms=15, sync_ms=6, starve_ms=2.0, traced=range(40, 60))
    # 1 ms sampling, 50 us of handler a sample: 0.75 ms of the 15 ms step is cnnprof's
    sampler = {"sampler_self_s": 0.05, "samples": 1000, "interval_ms": 1.0}
    cost = traced_sync_cost(trace, syncs, steps, sampler)
    assert cost is not None and cost.profiler_s * 1e3 == pytest.approx(0.75)
    assert cost.share == pytest.approx((15 - 0.75 - cost.gpu_step_s * 1e3) / (15 - 0.75))


def test_no_estimate_without_syncs_or_a_trace_of_the_steady_state() -> None:
    trace, syncs, steps = _trace(100, step_ms=15, sync_ms=6, starve_ms=0.5, traced=range(40, 60))
    assert traced_sync_cost(trace, syncs.iloc[0:0], steps, {}) is None
    assert traced_sync_cost(trace, syncs, steps[50:], {}) is None  # the trace began in the warm-up
    assert traced_sync_cost(None, syncs, steps, {}) is None


def test_the_sync_finding_says_about_with_a_trace_and_at_most_without(tmp_path: Path) -> None:
    """A per-step sync on a busy GPU: without a trace the finding gives NVML's idle share as an
    upper bound; with one, the traced estimate (and its evidence)."""
    findings = {}
    for traced in (False, True):
        folder = tmp_path / str(traced)
        folder.mkdir()
        run = Run(folder)
        end = train_steps(run, 100, sync_ms=6.0)  # 15 ms steps, the sync the last 6 ms
        run.tel("gpu_util_pct", util(end / 1000, busy=80, period_ms=1))
        loaded = run.load()
        if traced:
            busy = []
            for i in range(40, 60):  # the GPU idles 0.5 ms after each sync, fed the rest of the step
                t = i * 15 * MS
                busy += [[t + MS // 2, t + 9 * MS], [t + 9 * MS + 2 * US, t + 12 * MS]]
                busy += [[t + 12 * MS + 2 * US, t + 15 * MS]]
            doc = {"source": "test", "steps": 20, "window_ns": [40 * 15 * MS, 60 * 15 * MS], "busy_ns": busy}
            write_gpu_trace(run.dir, doc)
        result = diagnose(loaded)
        # the GPU's busy share: NVML's 80 % without a trace; the trace's 14.5 ms of a 15 ms step with it
        busy = (15 - 0.5 - 2 * 0.002) / 15 * 100 if traced else 80
        assert result.verdict.device_busy_pct == pytest.approx(busy, rel=1e-3)
        found = by_id(result.findings, "sync-sites") + by_id(result.findings, "sync-bound")
        assert len(found) == 1
        findings[traced] = found[0]
    plain, traced_f = findings[False], findings[True]
    assert "at most the GPU's idle time, 20% of the step" in plain.claim
    saving = (0.5 - 0.002) / 15
    assert f"about {saving:.0%} of the step" in traced_f.claim
    line = next(e for e in traced_f.evidence if e.startswith("GPU trace of 20 steps"))
    assert "the GPU's work per step when fed is 14.50 ms" in line and "6.00 ms of it waiting in syncs" in line
    assert f"saving about {saving:.0%} (0.50 ms a step)" in line


def test_the_traced_busy_share_judges_compute_against_launch_bound(tmp_path: Path) -> None:
    """NVML's 90 % (a share of sampling periods with a kernel) alone reads compute-bound; the
    trace's 60 % (kernel time) is preferred where there is one: the GPU waits 40 % of the step
    for the host, launch-bound."""
    verdicts = {}
    for traced in (False, True):
        folder = tmp_path / str(traced)
        folder.mkdir()
        run = Run(folder)
        end = train_steps(run, 100)  # 9 ms steps, no sync
        run.tel("gpu_util_pct", util(end / 1000, busy=90, period_ms=1))
        if traced:  # 5.4 ms of kernels in each 9 ms step, steps 40..59
            busy = [[i * 9 * MS + MS, i * 9 * MS + MS + 5400 * US] for i in range(40, 60)]
            doc = {"source": "test", "steps": 20, "window_ns": [40 * 9 * MS, 60 * 9 * MS], "busy_ns": busy}
            write_gpu_trace(run.dir, doc)
        result = diagnose(run.load())
        verdicts[traced] = result
    assert verdicts[False].verdict.id == "compute-bound"
    assert verdicts[True].verdict.id == "launch-bound"
    assert verdicts[True].verdict.device_busy_pct == pytest.approx(60)
    idle = by_id(verdicts[True].findings, "device-idle")[0]
    assert "GPU trace of 20 steps, CUPTI" in idle.evidence[0] and "idle below 70%" in idle.evidence[0]
