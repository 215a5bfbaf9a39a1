"""The stack samples as a flame chart over time: an empty bar trace the page fills with the bars
wide enough to see at the current zoom (stacks.py embeds them)."""

from __future__ import annotations

from ..lane import Lane, LaneContext


def build(ctx: LaneContext) -> list[Lane]:
    stacks = ctx.stacks
    if stacks is None:
        mode = ctx.run.record.profiler.get("mode")
        why = (
            f"the run used --profiler {mode}"
            if mode in ("cprofile", "none")
            else "samples.parquet or stacks.json is missing or empty; record with --profiler sampler (the default)"
        )
        ctx.absent.append(f"no flame chart: no stack samples: {why}")
        return []
    trace = {
        "type": "bar",
        "orientation": "h",
        "name": "stack samples",
        "base": [],
        "x": [],
        "y": [],
        "width": 0.92,
        "marker": {"color": [], "line": {"width": 0}},
        "text": [],
        "textposition": "inside",
        "insidetextanchor": "start",
        "textfont": {"size": 10, "color": "#ffffff"},
        "constraintext": "none",
        "textangle": 0,
        "hovertext": [],
        "hoverinfo": "text",
        "showlegend": False,
        "_lane": "flame",
        "_flame": True,
    }
    yaxis = {
        "range": [stacks.depth - 0.5, -0.5],
        "showticklabels": False,
        "showgrid": False,
        "zeroline": False,
        "title": {"text": "depth"},
    }
    title = "Stack samples (flame chart: root at the top; zoom in for detail)"
    return [Lane("flame", title, min(560, 9 * stacks.depth + 40), [trace], yaxis, legend=False)]
