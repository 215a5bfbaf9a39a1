"""Memory: device memory used (NVML), the process's resident memory (procfs), and the framework's
own per-epoch peak (metrics.parquet) as marks at each epoch's end."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..lane import Lane, LaneContext
from ..packing import seconds, values


def build(ctx: LaneContext) -> list[Lane]:
    keys = ctx.tel.in_lane("memory")
    if not keys:
        ctx.absent.append(ctx.why_missing("memory lane", ("nvml", "procfs")))
        return []
    lane = ctx.line_lane("memory", "Memory", 110, keys, {"ticksuffix": " MiB", "rangemode": "tozero"})
    _add_peak_memory(ctx, lane)
    return [lane]


def _add_peak_memory(ctx: LaneContext, lane: Lane) -> None:
    m, spans = ctx.run.metrics, ctx.run.spans
    if m.empty or "peak_memory_mb" not in m or spans.empty:
        return
    ends = spans[spans["kind"] == "epoch"]
    if ends.empty:
        return
    end_of = {int(e): int(t) for e, t in zip(ends["epoch"], ends["end_ns"]) if pd.notna(e)}
    rows = [(end_of[int(e)], v) for e, v in zip(m["epoch"], m["peak_memory_mb"]) if pd.notna(v) and int(e) in end_of]
    if rows:
        lane.traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "framework peak (per epoch)",
                "x": seconds([r[0] for r in rows]),
                "y": values(np.array([r[1] for r in rows])),
                "marker": {"symbol": "diamond", "size": 8, "color": "#e45756"},
                "_lane": lane.key,
            }
        )
