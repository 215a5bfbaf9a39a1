"""Temperature (NVML) or macOS's thermal pressure level (powermetrics)."""

from __future__ import annotations

from typing import Any

from ....traces.series import metric_parts
from ..lane import Lane, LaneContext

PRETTY = {"temp_c": "temperature (°C)", "thermal_pressure_level": "thermal pressure"}
LEVELS = ["Nominal", "Moderate", "Heavy", "Trapping", "Sleeping"]


def build(ctx: LaneContext) -> list[Lane]:
    keys = ctx.tel.find("temp_c", "thermal_pressure_level")
    if not keys:
        return []
    yaxis: dict[str, Any] = {"rangemode": "tozero"}
    if all(metric_parts(k[1])[1] == "thermal_pressure_level" for k in keys):
        yaxis = {"range": [-0.2, 4.2], "tickvals": list(range(len(LEVELS))), "ticktext": LEVELS}
    return [ctx.line_lane("thermal", "Thermal", 90, keys, yaxis, PRETTY)]
