"""What the syncs cost, from the GPU trace of a few steps (traces/gpu_trace.py), when there is one.

A blocking sync drains the GPU's queue: when it returns the GPU has nothing to do, and it waits
while the host (released) prepares and launches the next work, and again whenever it outruns the
host, until the host is ahead. Without the sync the host would run ahead and the step would take
as long as the slower side: the GPU's work, or the host's (its step less the wait). So

    saving per step = min(step - GPU work per step when fed, time the host waited in syncs)

The GPU's work per step comes from the trace (kernels, copies and memsets, plus the gap the GPU
shows between them even when fed, measured inside the syncs where the host waits and the queue
is full), per traced step (the trace is drained at both ends: it holds exactly those steps'
work). The step is the steady-state median outside the traced steps (recording CUPTI activity
slows the host's launches), less cnnprof's own sampling (its handler's measured time), since
that host time is on the critical path exactly when a sync has emptied the GPU's queue. Host-
side figures are not taken from the traced steps for the same reason.

Checked on the H200 against side-by-side runs without the sync, without cnnprof
(docs/BENCHMARKS.md, issue 10)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...traces.gpu_trace import GpuTrace
from ...traces.steps import merge_intervals
from .context import inside

# Fewer gaps than this inside the syncs: the fed gap is taken as the 10th percentile of all the
# trace's gaps instead (the GPU's quickest turnarounds).
MIN_FED_GAPS = 5


@dataclass(frozen=True)
class SyncCost:
    share: float  # of the (profiler-corrected) step: the estimate
    step_s: float  # the steady-state step
    profiler_s: float  # cnnprof's sampling per step, subtracted
    gpu_step_s: float  # the GPU's work per step when fed
    busy_step_s: float  # of which kernels, copies and memsets
    fed_gap_ns: float
    gaps_per_step: float
    wait_step_s: float  # the host's time in syncs per step
    steps: int  # the traced steps

    @property
    def saving_s(self) -> float:
        return self.share * (self.step_s - self.profiler_s)


def _overlap_ns(busy: np.ndarray, start: int, end: int) -> int:
    clipped = np.clip(busy, start, end)
    return int((clipped[:, 1] - clipped[:, 0]).sum())


def _fed_gap(trace: GpuTrace, waits: np.ndarray) -> float:
    gaps = trace.gaps()
    lengths = (gaps[:, 1] - gaps[:, 0]).astype(float)
    fed = lengths[inside(gaps[:, 0], gaps[:, 1], waits)] if len(gaps) else lengths
    if len(fed) >= MIN_FED_GAPS:
        return float(np.median(fed))
    return float(np.percentile(lengths, 10)) if len(lengths) else 0.0


def profiler_cost_per_step(profiler: dict[str, Any], step_s: float) -> float:
    """cnnprof's sampler handler time per step: its measured self time per sample times the
    samples a step takes (0 for other profilers, whose cost the run does not measure)."""
    self_s, samples, interval_ms = (profiler.get(k) for k in ("sampler_self_s", "samples", "interval_ms"))
    if not all(isinstance(v, (int, float)) and v > 0 for v in (self_s, samples, interval_ms)):
        return 0.0
    return float(self_s) / float(samples) * step_s / (float(interval_ms) / 1e3)


def traced_sync_cost(
    trace: GpuTrace | None,
    syncs: pd.DataFrame,
    steady: np.ndarray,
    profiler: dict[str, Any],
    deferred_ns: float = 0.0,
) -> SyncCost | None:
    """The estimate, or None without a trace of steady-state steps or without syncs. `syncs`
    are the accelerator syncs of the steady state, `steady` its steps, `profiler` run.json's
    profiler section; `deferred_ns` the waits deferred to after the steps (RunView.deferred),
    spread over the steps: a host that runs ahead finishes its side of a step early."""
    if trace is None or syncs.empty or not len(steady) or not trace.starts_after(int(steady[0, 0])):
        return None
    busy_step = trace.busy_per_step_ns
    if busy_step is None:
        return None
    start, end = trace.span_ns
    s = syncs["start_ns"].to_numpy(np.int64)
    e = syncs["end_ns"].to_numpy(np.int64)
    near = (e > start) & (s < end)
    waits = merge_intervals(np.stack([s[near], e[near]], axis=1)) if near.any() else np.zeros((0, 2), np.int64)
    fed_gap = _fed_gap(trace, waits)
    gaps_step = max(len(trace.busy) - 1, 0) / trace.steps
    gpu_step = busy_step + gaps_step * fed_gap

    untraced = steady[(steady[:, 1] <= trace.window[0]) | (steady[:, 0] >= trace.window[1])]
    durations = untraced if len(untraced) else steady
    step_ns = float(np.median(durations[:, 1] - durations[:, 0])) + deferred_ns / len(steady)
    profiler_ns = profiler_cost_per_step(profiler, step_ns / 1e9) * 1e9
    host_step = step_ns - profiler_ns
    wait_step = float((syncs["end_ns"] - syncs["start_ns"]).sum()) / len(steady)
    saving = max(0.0, min(host_step - gpu_step, wait_step))
    return SyncCost(
        share=saving / host_step if host_step > 0 else 0.0,
        step_s=step_ns / 1e9,
        profiler_s=profiler_ns / 1e9,
        gpu_step_s=gpu_step / 1e9,
        busy_step_s=busy_step / 1e9,
        fed_gap_ns=fed_gap,
        gaps_per_step=gaps_step,
        wait_step_s=wait_step / 1e9,
        steps=trace.steps,
    )


def evidence_line(cost: SyncCost) -> str:
    ms = 1e3
    profiler = f", {(cost.step_s - cost.profiler_s) * ms:.2f} ms without cnnprof's sampling" if cost.profiler_s else ""
    return (
        f"GPU trace of {cost.steps} steps (CUPTI): the GPU's work per step when fed is {cost.gpu_step_s * ms:.2f} ms "
        f"({cost.busy_step_s * ms:.2f} ms of kernels and copies, {cost.gaps_per_step:.0f} gaps of "
        f"{cost.fed_gap_ns / 1e3:.1f} us); the steady step takes {cost.step_s * ms:.2f} ms{profiler}, "
        f"{cost.wait_step_s * ms:.2f} ms of it waiting in syncs: without them the step would take the longer of "
        f"the GPU's work and the host's, saving about {cost.share:.0%} ({cost.saving_s * ms:.2f} ms a step)"
    )


def trace_busy_line(trace: GpuTrace) -> str | None:
    """What the GPU trace says of the GPU's busy time, and its heaviest activities."""
    share = trace.busy_share
    if share is None:
        return None
    start, end = trace.span_ns
    heavy = ", ".join(f"{name[:60]} {total / (end - start):.0%} (x{count:,})" for name, total, count in trace.top[:3])
    return f"GPU trace of {trace.steps} steps (CUPTI): kernels and copies ran {share:.0%} of the time" + (
        f"; longest: {heavy}" if heavy else ""
    )
