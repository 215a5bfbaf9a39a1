"""Busy % of every CPU core as a heat map, for machines without E/P clusters."""

from __future__ import annotations

import numpy as np

from ..lane import Lane, LaneContext
from ..packing import seconds, values
from .cpu import cluster_keys

HEATMAP_COLUMNS = 1000


def build(ctx: LaneContext) -> list[Lane]:
    keys = ctx.tel.in_lane("cores")
    if not keys or cluster_keys(ctx):
        return []

    def core_no(key: tuple[str, str]) -> int:
        return int(key[1].split(".")[1])

    keys = sorted(keys, key=core_no)
    cols = min(HEATMAP_COLUMNS, max(1, max(len(ctx.tel.series[k][0]) for k in keys)))
    edges = np.linspace(0.0, ctx.t_end * 1e9, cols + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    z = []
    for key in keys:
        t, v = ctx.tel.series[key]
        b = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, cols - 1)
        sums = np.bincount(b, weights=v, minlength=cols)
        counts = np.bincount(b, minlength=cols)
        with np.errstate(invalid="ignore", divide="ignore"):
            row = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        z.append(values(row, 1))
    trace = {
        "type": "heatmap",
        "name": "CPU cores",
        "x": seconds(centers),
        "y": [f"cpu {core_no(k)}" for k in keys],
        "z": z,
        "zmin": 0,
        "zmax": 100,
        "colorscale": "Viridis",
        "showscale": False,
        "hovertemplate": "%{y}: %{z:.0f} % at %{x:.1f} s<extra></extra>",
        "_lane": "cores",
    }
    title = f"CPU cores, busy % ({keys[0][0]}; no E/P clusters on this machine)"
    height = min(260, 14 * len(keys) + 40)
    return [Lane("cores", title, height, [trace], {"autorange": "reversed", "showgrid": False}, legend=False)]
