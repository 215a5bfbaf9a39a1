"""CPU cluster clocks, under the CPU lane (drawn only where that lane is)."""

from __future__ import annotations

from ..lane import Lane, LaneContext
from .cpu import cluster_keys


def build(ctx: LaneContext) -> list[Lane]:
    keys = ctx.tel.in_lane("cpu_clock")
    if not keys or not cluster_keys(ctx):
        return []
    return [ctx.line_lane("cpu_clock", "CPU cluster clock", 100, keys, {"ticksuffix": " MHz", "rangemode": "tozero"})]
