"""Temperature (NVML) or macOS's thermal pressure level (powermetrics)."""

from __future__ import annotations

from typing import Any

from ....traces.metrics import metric_parts
from ..lane import Lane, LaneContext

LEVELS = ["Nominal", "Moderate", "Heavy", "Trapping", "Sleeping"]


def build(ctx: LaneContext) -> list[Lane]:
    keys = ctx.tel.in_lane("thermal")
    if not keys:
        return []
    yaxis: dict[str, Any] = {"rangemode": "tozero"}
    if all(metric_parts(k[1])[1] == "thermal_pressure_level" for k in keys):
        yaxis = {"range": [-0.2, 4.2], "tickvals": list(range(len(LEVELS))), "ticktext": LEVELS}
    return [ctx.line_lane("thermal", "Thermal", 90, keys, yaxis)]
