"""What the syncs cost, from the GPU trace of a few steps (traces/gpu_trace.py), when there is one.

A blocking sync drains the GPU's queue: when it returns the GPU has nothing to do, and it waits
while the host (released) prepares and launches the next work, then again whenever it outruns
the host, until the host is ahead. Without the sync the host would already be ahead and that
idle time would mostly vanish. So the estimate is the GPU's idle time *outside* the syncs, above
the gaps the GPU shows even when it is fed (measured inside the syncs, where the host waits and
the queue is full: the latency between dependent kernels), capped by the time the host spent
waiting (what the syncs can give back at most if the host, not the GPU, is the slower side):

    cost = min(sync wait, sum over gaps outside syncs of max(0, gap - fed gap)) / traced time

Checked on the H200 against a side-by-side run without the sync (docs/BENCHMARKS.md, issue 10).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    share: float  # of the traced time: the estimate
    idle_share: float  # the GPU's idle time outside the syncs, above the fed gap
    wait_share: float  # the host's time inside the syncs
    fed_gap_ns: float
    steps: int
    traced_s: float
    syncs: int


def traced_sync_cost(trace: GpuTrace | None, syncs: pd.DataFrame, steady: np.ndarray) -> SyncCost | None:
    """The estimate over the trace's window, or None without a trace inside the steady state
    or without syncs inside the trace."""
    if trace is None or not len(trace.busy) or syncs.empty:
        return None
    start, end = trace.span_ns
    traced = end - start
    if traced <= 0 or not inside(np.array([start]), np.array([end]), steady)[0]:
        return None
    s = syncs["start_ns"].to_numpy(np.int64)
    e = syncs["end_ns"].to_numpy(np.int64)
    keep = (e > start) & (s < end)
    if not keep.any():
        return None
    waits = merge_intervals(np.stack([np.clip(s[keep], start, end), np.clip(e[keep], start, end)], axis=1))
    wait_ns = float((waits[:, 1] - waits[:, 0]).sum())
    gaps = trace.gaps()
    lengths = (gaps[:, 1] - gaps[:, 0]).astype(float)
    in_sync = inside(gaps[:, 0], gaps[:, 1], waits) if len(gaps) else np.zeros(0, dtype=bool)
    fed = lengths[in_sync]
    if len(fed) >= MIN_FED_GAPS:
        fed_gap = float(np.median(fed))
    else:
        fed_gap = float(np.percentile(lengths, 10)) if len(lengths) else 0.0
    idle_ns = float(np.clip(lengths[~in_sync] - fed_gap, 0.0, None).sum())
    return SyncCost(
        share=min(idle_ns, wait_ns) / traced,
        idle_share=idle_ns / traced,
        wait_share=wait_ns / traced,
        fed_gap_ns=fed_gap,
        steps=trace.steps,
        traced_s=traced / 1e9,
        syncs=int(keep.sum()),
    )


def evidence_line(cost: SyncCost) -> str:
    return (
        f"GPU trace of {cost.steps} steps ({cost.traced_s * 1e3:.0f} ms, {cost.syncs:,} syncs; CUPTI): the GPU "
        f"sat idle {cost.idle_share:.1%} of the time outside the syncs (beyond its {cost.fed_gap_ns / 1e3:.1f} us "
        f"gaps while fed) and the host waited {cost.wait_share:.1%} inside them: removing the syncs saves "
        f"about {cost.share:.0%}, the smaller of the two"
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
