"""How busy the GPU was: kernel time share (NVML), active residency (powermetrics), memory traffic."""

from __future__ import annotations

from ..lane import Lane, LaneContext


def build(ctx: LaneContext) -> list[Lane]:
    keys = ctx.tel.in_lane("gpu_activity")
    if not keys:
        ctx.absent.append(ctx.why_missing("GPU activity lane", ("powermetrics", "nvml")))
        return []
    return [ctx.line_lane("gpu_activity", "GPU activity", 110, keys, {"range": [0, 105], "ticksuffix": " %"})]
