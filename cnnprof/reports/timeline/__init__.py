"""The report's timeline: lanes on one time axis (phases and syncs, GPU clock and activity, power,
CPU, memory, thermal, the stack samples as a flame chart, one flame chart per child process) as
one plotly figure, plus the compact data the page's script uses when a time range is selected
(call tree of one process or all, phases, energy).

The parts: `lanes/` (one module per lane, ordered by the registry in lanes/__init__.py), `lane.py`
(the protocol and the context a lane builder gets), `spans.py` and `stacks.py` (the run's spans
and stack samples read once, and what the range panel needs of them), `energy_data.py` (power for
a range's energy), `packing.py` (downsampling and packing), `layout.py` (the plotly figure).

Only what is drawn is downsampled: telemetry lanes to at most MAX_POINTS points per series
(min/max-preserving buckets), sync marks thinned to the longest per time slice, per-step spans
turned into shares of time when there are too many to draw, flame-chart bars capped (the page
draws the ones wide enough to see at the current zoom). Aggregates (energy, call tree, phase
times) come from all the data, at most coarsened in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...traces.energy import power_series
from ...traces.reader import RunData
from ...traces.series import TelemetrySeries
from .energy_data import power_payload
from .lane import LaneContext
from .lanes import LANES
from .lanes.phases import top_phases
from .layout import assemble
from .spans import SpanArrays, range_panel_data
from .stacks import process_tree, stack_data


@dataclass
class Timeline:
    figure: dict[str, Any]
    data: dict[str, Any]  # for the page's script (range selection)
    absent: list[str]  # one line per lane left out, saying why
    notes: list[str]  # what was downsampled and how


def build_timeline(run: RunData) -> Timeline:
    tel = TelemetrySeries(run.telemetry)
    t_end_ns = max(run.duration_ns, tel.max_t(), run.record.duration_ns or 0)
    if not run.samples.empty and "t_ns" in run.samples and "dt_ns" in run.samples:
        t_end_ns = max(t_end_ns, int((run.samples["t_ns"] + run.samples["dt_ns"]).max()))
    t_end = max(t_end_ns / 1e9, 1e-3)
    ctx = LaneContext(run, tel, SpanArrays.of(run.spans), t_end)
    ctx.stacks = stack_data(run, t_end, ctx.notes)
    ctx.children = run.children

    lanes = [lane for build in LANES for lane in build(ctx)]
    if note := ctx.thinning_note():
        ctx.notes.append(note)
    top = top_phases(ctx)
    phases: dict[str, Any] = {"top": top, "labels": {}}
    if ctx.spans is not None:
        phases |= range_panel_data(ctx.spans, t_end)
    phases |= {k: v for k, v in ctx.page.items() if k == "detail"}
    try:
        series = power_series(run.telemetry) if not run.telemetry.empty else {}
    except (KeyError, TypeError, ValueError) as exc:  # a telemetry table without its columns
        series = {}
        ctx.notes.append(
            f"energy of a selection left out: the power rows are unreadable ({type(exc).__name__}: {exc})"
        )
    data = {
        "t_end_s": t_end,
        "phases": phases,
        "stacks": ctx.stacks.payload if ctx.stacks else None,
        # every process's call tree, for the page's process picker (a run with children only)
        "procs": process_tree(run, ctx.children, t_end) if ctx.children else None,
        "power": power_payload(series),
    }
    if not lanes:
        return Timeline({}, data, ctx.absent, ctx.notes)
    figure = assemble(lanes, t_end, top)
    data["flame_trace"] = next((i for i, tr in enumerate(figure["data"]) if tr.get("meta") == "flame"), None)
    return Timeline(figure, data, ctx.absent, ctx.notes)
