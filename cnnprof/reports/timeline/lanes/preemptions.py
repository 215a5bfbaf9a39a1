"""How often the OS took the CPU away from the training process (involuntary context switches):
a CPU run whose threads outnumber the cores shows it here before it shows as a slow step."""

from __future__ import annotations

from ..lane import Lane, LaneContext


def build(ctx: LaneContext) -> list[Lane]:
    keys = ctx.tel.in_lane("preemptions")
    if not keys:
        return []
    yaxis = {"rangemode": "tozero", "ticksuffix": "/s"}
    return [ctx.line_lane("preemptions", "Preemptions (involuntary context switches)", 90, keys, yaxis)]
