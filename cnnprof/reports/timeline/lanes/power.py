"""Power of every source that measures it (package, CPU, GPU, ANE, GPU board, RAPL domains)."""

from __future__ import annotations

from ....traces.series import metric_parts
from ..lane import Lane, LaneContext

ORDER = {"combined_power_w": 0, "cpu_power_w": 1, "gpu_power_w": 2, "ane_power_w": 3}
PRETTY = {
    "combined_power_w": "total (CPU+GPU+ANE)",
    "cpu_power_w": "CPU",
    "gpu_power_w": "GPU",
    "ane_power_w": "ANE",
    "power_w": "GPU board",
}


def build(ctx: LaneContext) -> list[Lane]:
    keys = [k for k in ctx.tel.series if k[1].endswith("power_w")]
    keys.sort(key=lambda k: (k[0], ORDER.get(metric_parts(k[1])[1], 9), k[1]))
    if not keys:
        ctx.absent.append(ctx.why_missing("power lane", ("powermetrics", "nvml", "rapl")))
        return []
    return [ctx.line_lane("power", "Power", 130, keys, {"ticksuffix": " W", "rangemode": "tozero"}, PRETTY)]
