"""The lane group of one rank in a job report: its steps, phases, collectives and syncs on the job's
time axis (job_context.py), one timeline lane per rank so that a slow rank's long work lines up with
the others' long collectives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .diagnosis.job_context import COLLECTIVE, RankView
from .text import plotly_text
from .timeline.lane import Lane
from .timeline.style import KIND_COLORS, PALETTE, SYNC_COLORS

MAX_BARS = 4000  # per row and name: the longest are drawn
ROW_KINDS = (
    ("steps", ("step",)),
    ("phases", ("epoch", "train", "validation", "test", "single_inference", "phase", "setup")),
    ("collectives", (COLLECTIVE,)),
    ("syncs", ("sync",)),
)


def _longest(frame: pd.DataFrame, notes: list[str], what: str) -> pd.DataFrame:
    if len(frame) <= MAX_BARS:
        return frame
    notes.append(f"timeline: {MAX_BARS:,} of {len(frame):,} {what} drawn (the longest)")
    return frame.nlargest(MAX_BARS, "dur_ns").sort_values("start_ns")


def _hover(row: Any, rank: int) -> str:
    parts = [
        f"<b>{plotly_text(row.name)}</b> ({plotly_text(row.kind)}), rank {rank}",
        f"{row.dur_ns / 1e6:,.3f} ms at {row.start_ns / 1e9:,.3f} s",
    ]
    if isinstance(row.caller, str) and row.caller:
        parts.append("called from " + plotly_text(row.caller))
    return "<br>".join(parts)


def _bars(frame: pd.DataFrame, row: int, name: str, color: str, rank: int, legend: bool) -> dict[str, Any]:
    return {
        "type": "bar",
        "orientation": "h",
        "name": plotly_text(name),
        "legendgroup": name,
        "base": np.round(frame["start_ns"].to_numpy() / 1e9, 6).tolist(),
        "x": np.round(frame["dur_ns"].to_numpy() / 1e9, 6).tolist(),
        "y": [row] * len(frame),
        "width": 0.78,
        "marker": {"color": color, "line": {"width": 1, "color": "#ffffff"}},  # back-to-back steps stay apart
        "hovertext": [_hover(r, rank) for r in frame.itertuples(index=False)],
        "hoverinfo": "text",
        "showlegend": legend,
    }


def rank_lane(view: RankView, host: str, notes: list[str], legend_seen: set[str]) -> Lane | None:
    """One lane: a row per kind the rank recorded (steps, phases, collectives, syncs), coloured by
    name; `legend_seen` keeps one legend entry per name across the ranks."""
    spans = view.spans.copy()
    spans["name"] = spans["name"].fillna("").astype(str)
    if view.steps and not (spans["kind"] == "step").any():
        # Steps the job rules derived (job_context.py), drawn where step spans would be.
        derived = pd.DataFrame(
            {
                "kind": "step",
                "name": "derived step",
                "start_ns": [s for s, _ in view.steps],
                "end_ns": [e for _, e in view.steps],
                "caller": None,
            }
        )
        derived["dur_ns"] = derived["end_ns"] - derived["start_ns"]
        spans = pd.concat([spans, derived], ignore_index=True)
    rows: list[str] = []
    traces: list[dict[str, Any]] = []
    for label, kinds in ROW_KINDS:
        sel = spans[spans["kind"].isin(kinds)]
        if sel.empty:
            continue
        r = len(rows)
        rows.append(label)
        for j, name in enumerate(sel["name"].value_counts().index.tolist()):
            part = _longest(sel[sel["name"] == name], notes, f"rank {view.rank} {label} {name}")
            kind = str(part["kind"].iloc[0])
            if kind == COLLECTIVE:
                color = PALETTE[j % len(PALETTE)]
            elif kind == "sync":
                color = SYNC_COLORS[j % len(SYNC_COLORS)]
            else:
                color = KIND_COLORS.get(kind, "#888")
            key = f"{kind}: {name}"
            traces.append(_bars(part, r, key, color, view.rank, key not in legend_seen))
            legend_seen.add(key)
    if not rows:
        return None
    return Lane(
        f"rank{view.rank}",
        f"rank {view.rank} ({host}): steps, phases, collectives, syncs",
        26 * len(rows) + 30,
        traces,
        yaxis={
            "tickvals": list(range(len(rows))),
            "ticktext": rows,
            "range": [len(rows) - 0.5, -0.5],
            "showgrid": False,
            "zeroline": False,
        },
    )
