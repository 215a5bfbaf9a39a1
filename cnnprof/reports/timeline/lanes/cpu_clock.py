"""CPU cluster clocks, under the CPU lane (drawn only where that lane is)."""

from __future__ import annotations

from ..lane import Lane, LaneContext
from .cpu import cluster_keys

PRETTY = {"e_cluster_freq_mhz": "E cluster", "p_cluster_freq_mhz": "P cluster"}


def build(ctx: LaneContext) -> list[Lane]:
    if not cluster_keys(ctx):
        return []
    keys = ctx.tel.find("e_cluster_freq_mhz", "p_cluster_freq_mhz") or ctx.tel.matching(r"cluster\.[^.]+\.freq_mhz")
    if not keys:
        return []
    yaxis = {"ticksuffix": " MHz", "rangemode": "tozero"}
    return [ctx.line_lane("cpu_clock", "CPU cluster clock", 100, keys, yaxis, PRETTY)]
