"""One lane per child process of the run (DataLoader workers, Pool workers, other multiprocessing
children: traces/processes.py): its stack samples as a flame chart over time, on the run's time
axis, and in its title its CPU time over its life (% of one core) and the time sampled; under it,
where procfs read it, its CPU over time (`proc.<pid>.cpu_pct`). The main
process's flame chart is the `flame` lane; the call tree under the timeline shows any one process
or all of them (stacks.process_tree).

A child's flame chart is drawn whole, not refilled on zoom as the main one is: its longest
MAX_BARS bars down to MAX_DEPTH frames (workers' stacks are shallow and repeat, so that is most of
what they did); a note says where bars were left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ....traces.flame import merge_samples
from ....traces.processes import ProcessSamples
from ...text import plotly_text
from ..lane import Lane, LaneContext
from ..stacks import categories, prepare
from ..style import CATEGORY_COLORS

MAX_LANES = 8  # children with a lane of their own (the call tree's process picker lists them all)
MAX_BARS = 3000
MAX_DEPTH = 16  # a worker's own work sits a few frames below its _bootstrap
ROW_PX = 8


def build(ctx: LaneContext) -> list[Lane]:
    lanes = []
    for proc in ctx.children[:MAX_LANES]:
        lane = _lane(proc, ctx.notes)
        if lane is None:
            why = proc.info.get("note") or "it ended before its first sample, or its samples are unreadable"
            ctx.absent.append(f"no lane for {proc.label}: no stack samples ({why})")
        else:
            lanes.append(lane)
        key = ("procfs", f"proc.{proc.pid}.cpu_pct")  # its CPU over time, where procfs read it
        if key in ctx.tel.series:
            yaxis = {"rangemode": "tozero", "ticksuffix": " %"}
            title = f"{proc.label}: CPU, % of one core"
            lanes.append(ctx.line_lane(f"process-cpu:{proc.pid}", title, 60, [key], yaxis))
    if ctx.children:
        ctx.notes.append(
            "processes: each process's main thread is sampled; other threads are not (their time shows as "
            "a main thread waiting on them)"
        )
    if len(ctx.children) > MAX_LANES:
        ctx.notes.append(
            f"processes: the first {MAX_LANES} of {len(ctx.children)} child processes have a lane; "
            "the call tree's process picker has every one"
        )
    return lanes


def title(proc: ProcessSamples, sampled_s: float) -> str:
    cpu = proc.cpu_pct
    cpu_text = f"{cpu:.0f} % CPU over its life" if cpu is not None else "CPU time not recorded"
    return f"{proc.label}: {cpu_text}, {sampled_s:.2f} s sampled ({proc.info.get('start_method', '?')})"


def _lane(proc: ProcessSamples, notes: list[str]) -> Lane | None:
    prepared = prepare(proc.stacks, proc.samples, [])
    if prepared is None:
        return None
    bars = merge_samples(prepared.intervals, prepared.matrix)
    keep = np.flatnonzero(bars.depth < MAX_DEPTH)
    if len(keep) > MAX_BARS:
        longest = np.argsort(bars.end_ns[keep] - bars.start_ns[keep], kind="stable")[-MAX_BARS:]
        notes.append(f"{proc.label}: the {MAX_BARS:,} longest of {len(keep):,} flame bars are drawn")
        keep = np.sort(keep[longest])
    funcs = prepared.funcs
    colors = [CATEGORY_COLORS.get(c, "#999999") for c in categories(funcs)]
    start, end = bars.start_ns[keep], bars.end_ns[keep]
    frame = bars.frame[keep].tolist()
    names = [plotly_text(funcs.function[f]) for f in frame]
    hover = [
        f"<b>{plotly_text(proc.label)}</b><br>{name}<br>{plotly_text(funcs.where(f))}<br>"
        f"{(e - s) / 1e6:,.1f} ms from {s / 1e9:,.3f} s"
        for name, f, s, e in zip(names, frame, start.tolist(), end.tolist(), strict=True)
    ]
    trace: dict[str, Any] = {
        "type": "bar",
        "orientation": "h",
        "name": plotly_text(proc.label),
        "base": (start / 1e9).tolist(),
        "x": ((end - start) / 1e9).tolist(),
        "y": bars.depth[keep].tolist(),
        "width": 0.92,
        "marker": {"color": [colors[f] for f in frame], "line": {"width": 0}},
        "text": names,
        "textposition": "inside",
        "insidetextanchor": "start",
        "textfont": {"size": 10, "color": "#ffffff"},
        "constraintext": "none",
        "textangle": 0,
        "hovertext": hover,
        "hoverinfo": "text",
        "showlegend": False,
    }
    depth = int(bars.depth[keep].max()) + 1 if len(keep) else 1
    yaxis = {"range": [depth - 0.5, -0.5], "showticklabels": False, "showgrid": False, "zeroline": False}
    sampled_s = float(prepared.intervals.weight_ns.sum()) / 1e9
    return Lane(f"process:{proc.pid}", title(proc, sampled_s), ROW_PX * depth + 40, [trace], yaxis, legend=False)
