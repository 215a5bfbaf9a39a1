"""Phases and sync calls: epochs, the run's phases (setup, train / validation / test / single
inference, a script's named phases), batches and the parts of a step, each sync call as a mark."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...text import plotly_text
from .. import spans as span_data
from ..lane import Lane, LaneContext
from ..packing import seconds, thin_longest
from ..spans import INNER_KINDS, bars
from ..style import KIND_COLORS, SYNC_COLORS

# Rows of whole phases: (kinds, row label).
TOP_ROWS = ((("epoch",), "epoch"), (("setup", "phase", "train", "validation", "test", "single_inference"), "phase"))
TOP_KINDS = tuple(k for kinds, _ in TOP_ROWS for k in kinds)
STEP_PARTS = INNER_KINDS[2:]  # data, forward, backward, optimizer, step
MAX_SYNC_MARKS = 3000  # per sync name
NO_SPANS = "no phases lane: no spans were recorded (spans.parquet missing or empty)"
DETAIL_DRAW = 2000  # step spans the page draws one by one for a narrow range


def top_phases(ctx: LaneContext) -> list[list[object]]:
    """[kind, name, start µs, end µs] of every whole phase: the overview, the epoch lines, the panel."""
    sp = ctx.spans
    if sp is None:
        return []
    out: list[list[object]] = []
    for kinds, _ in TOP_ROWS:
        for k in kinds:
            idx = np.flatnonzero(sp.kind == k)
            out += [[k, str(sp.name[i]), int(sp.start[i] // 1000), int(sp.end[i] // 1000)] for i in idx]
    return out


def build(ctx: LaneContext) -> list[Lane]:
    sp = ctx.spans
    if sp is None:
        ctx.absent.append(NO_SPANS)
        return []
    kind, name, start, end = sp.kind, sp.name, sp.start, sp.end
    lane = Lane("phases", "Phases and sync calls", 0)
    rows: list[str] = []

    def row(label: str) -> int:
        rows.append(label)
        return len(rows) - 1

    for kinds, label in TOP_ROWS:
        if not np.isin(kind, kinds).any():
            continue
        r = row(label)
        for k in kinds:
            idx = np.flatnonzero(kind == k)
            if not len(idx):
                continue
            if k == "phase":  # a script's named phases: one legend entry per name
                for n in pd.unique(name[idx]):
                    sel = idx[name[idx] == n]
                    hover = [sp.hover(i) for i in sel]
                    lane.traces.append(
                        bars(str(n) or "phase", start[sel], end[sel], r, KIND_COLORS["phase"], hover, "phases")
                    )
                continue
            hover = [sp.hover(i) for i in idx]
            color = KIND_COLORS.get(k, "#888")
            legend = k != "epoch"
            lane.traces.append(bars(k.replace("_", " "), start[idx], end[idx], r, color, hover, "phases", legend))

    inner_any = np.isin(kind, INNER_KINDS).any()
    detail = False
    if inner_any and not sp.many_inner:
        for kinds, label in ((("batch", "single"), "batch"), (STEP_PARTS, "step")):
            sel = np.isin(kind, kinds)
            if not sel.any():
                continue
            r = row(label)
            labels = sorted({f"{k}:{n}" if k == "batch" else k for k, n in zip(kind[sel], name[sel])})
            for lab in labels:
                k, _, n = lab.partition(":")
                idx = np.flatnonzero((kind == k) & ((name == n) if n else True))
                title = f"{n} batch" if k == "batch" else k
                hover = [sp.hover(i) for i in idx]
                color = KIND_COLORS.get(lab, "#999")
                lane.traces.append(bars(title, start[idx], end[idx], r, color, hover, "phases", legend=label == "step"))
    elif inner_any:
        n_inner = int(np.isin(kind, INNER_KINDS).sum())
        detail = n_inner + int((kind == "sync").sum()) <= span_data.RAW_SPANS
        if detail:
            # Empty rows the page fills with the spans of the range when it is narrow enough.
            ctx.page["detail"] = {"max": DETAIL_DRAW, "colors": KIND_COLORS, "rows": {}}
            for label in ("batch", "step"):
                ctx.page["detail"]["rows"][label] = row(label)
                lane.traces.append(_detail_row(label))

    sync = kind == "sync"
    if sync.any():
        r = row("sync")
        if detail:
            ctx.page["detail"]["rows"]["sync"] = r
            lane.traces.append(_detail_row("sync"))
        for j, sname in enumerate(pd.Series(name[sync]).value_counts().index.tolist()):
            idx = np.flatnonzero(sync & (name == sname))
            dur = (end - start)[idx].astype(float)
            keep = idx[thin_longest(start[idx].astype(float), dur, MAX_SYNC_MARKS, ctx.t_end * 1e9)]
            if len(keep) < len(idx):
                ctx.notes.append(
                    f"timeline: {len(keep):,} of {len(idx):,} {sname} sync marks drawn (the longest per time slice)"
                )
            lane.traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": plotly_text(f"sync: {sname}"),
                    "x": seconds((start[keep] + end[keep]) / 2, 5),
                    "y": [r] * len(keep),
                    "marker": {
                        "symbol": "line-ns-open",
                        "size": 14,
                        "line": {"width": 2},
                        "color": SYNC_COLORS[j % len(SYNC_COLORS)],
                    },
                    "hovertext": [sp.hover(i) for i in keep],
                    "hoverinfo": "text",
                    "_lane": "phases",
                }
            )
    if not rows:
        ctx.absent.append(NO_SPANS)
        return []
    lane.height = 26 * len(rows) + 30
    lane.yaxis = {
        "tickvals": list(range(len(rows))),
        "ticktext": rows,
        "range": [len(rows) - 0.5, -0.5],
        "showgrid": False,
        "zeroline": False,
    }
    return [lane]


def _detail_row(label: str) -> dict[str, object]:
    empty = np.zeros(0)
    return bars(f"{label} (zoom in)", empty, empty, 0, "#999", [], "phases", legend=False) | {
        "uid": f"detail-{label}",
        "y": [],
    }
