"""Power of every source that measures it (package, CPU, GPU, ANE, GPU board, RAPL domains)."""

from __future__ import annotations

from ....traces.metrics import order
from ..lane import Lane, LaneContext


def build(ctx: LaneContext) -> list[Lane]:
    keys = sorted(ctx.tel.in_lane("power"), key=lambda k: (k[0], order(k[1]), k[1]))  # grouped by source
    if not keys:
        ctx.absent.append(ctx.why_missing("power lane", ("powermetrics", "nvml", "rapl")))
        return []
    return [ctx.line_lane("power", "Power", 130, keys, {"ticksuffix": " W", "rangemode": "tozero"})]
