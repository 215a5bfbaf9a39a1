"""For a run with too many batch and step spans to draw one by one: the share of time in each
part of a step, per time slice (a stacked area)."""

from __future__ import annotations

import numpy as np

from ..lane import Lane, LaneContext
from ..packing import coverage, seconds, values
from ..spans import INNER_KINDS, SHARE_BUCKETS
from ..style import KIND_COLORS

STEP_KINDS = ("data", "forward", "backward", "optimizer", "step", "sync")


def build(ctx: LaneContext) -> list[Lane]:
    sp = ctx.spans
    if sp is None or not sp.many_inner:
        return []
    edges = np.linspace(0.0, ctx.t_end * 1e9, SHARE_BUCKETS + 1)
    width = np.diff(edges)
    centers = (edges[:-1] + edges[1:]) / 2
    lane = Lane("steps", "Share of time in each part of a step", 120, yaxis={"range": [0, 100], "ticksuffix": " %"})
    for k in STEP_KINDS:
        m = sp.kind == k
        if not m.any():
            continue
        covered, _ = coverage(sp.start[m], sp.end[m], edges)
        share = np.clip(np.diff(covered) / width * 100, 0, 100)
        lane.traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": k,
                "x": seconds(centers),
                "y": values(share, 2),
                "stackgroup": "steps",
                "line": {"width": 0.5, "color": KIND_COLORS.get(k, "#999")},
                "hovertemplate": "%{y:.1f} %<extra>" + k + "</extra>",
                "_lane": "steps",
            }
        )
    n_inner = int(np.isin(sp.kind, INNER_KINDS).sum())
    detail = "detail" in ctx.page
    ctx.notes.append(
        f"timeline: {n_inner:,} batch and step spans are drawn as shares of time per "
        f"{ctx.t_end / SHARE_BUCKETS:.3g} s slice"
        + (f", and one by one once a range holds at most {ctx.page['detail']['max']:,} of them" if detail else "")
    )
    return [lane]
