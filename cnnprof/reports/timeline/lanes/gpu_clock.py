"""The GPU clock, with a mark wherever NVML says the clocks were held down (power cap, thermal)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ....traces import nvml_codes
from ...text import plotly_text
from ..lane import Lane, LaneContext, series_label
from ..packing import seconds

MAX_CLOCK_EVENTS = 500


def build(ctx: LaneContext) -> list[Lane]:
    keys = ctx.tel.in_lane("gpu_clock")
    if not keys:
        ctx.absent.append(ctx.why_missing("GPU clock lane", ("powermetrics", "nvml")))
        return []
    lane = ctx.line_lane("gpu_clock", "GPU clock", 110, keys, {"ticksuffix": " MHz", "rangemode": "tozero"})
    lane.traces += _clock_event_traces(ctx)
    return [lane]


def _clock_event_traces(ctx: LaneContext) -> list[dict[str, Any]]:
    traces = []
    for key in ctx.tel.find("clock_event_reasons"):
        t, v = ctx.tel.series[key]
        mask = np.nan_to_num(v).astype(np.int64) & ~nvml_codes.BENIGN_BITS
        change = np.flatnonzero((mask != 0) & np.r_[True, mask[1:] != mask[:-1]])[:MAX_CLOCK_EVENTS]
        if not len(change):
            continue
        hover = [
            "<b>clocks held down</b><br>"
            + plotly_text(", ".join(nvml_codes.decode_clock_event_reasons(int(v[i]))))
            + f"<br>from {t[i] / 1e9:,.2f} s"
            for i in change
        ]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": plotly_text(f"{series_label(key)} (slowdown)"),
                "x": seconds(t[change]),
                "y": [0] * len(change),
                "hovertext": hover,
                "hoverinfo": "text",
                "marker": {"symbol": "x", "size": 9, "color": "#d62728"},
            }
        )
    return traces
