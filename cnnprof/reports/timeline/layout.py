"""The timeline as one plotly figure: each lane its own y axis and an x axis matching the
overview's (`xaxis`, at the bottom, with the range slider), titles, legends, epoch lines."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..text import plotly_text
from .lane import Lane
from .packing import seconds
from .style import KIND_COLORS

GAP = 34
OVERVIEW_H = 22
SLIDER = 56
MARGIN_T, MARGIN_B = 10, 40
MAX_EPOCH_LINES = 200


def overview_traces(top: list[list[Any]]) -> list[dict[str, Any]]:
    """Phases as thin bars: what the range slider shows of the run."""
    traces = []
    for kind in ("setup", "phase", "train", "validation", "test", "single_inference"):
        spans = [p for p in top if p[0] == kind]
        if spans:
            s = np.array([p[2] for p in spans], dtype=np.float64) * 1e3
            e = np.array([p[3] for p in spans], dtype=np.float64) * 1e3
            traces.append(
                {
                    "type": "bar",
                    "orientation": "h",
                    "base": seconds(s, 5),
                    "x": np.round((e - s) / 1e9, 6).tolist(),
                    "y": [0] * len(spans),
                    "width": 0.9,
                    "marker": {"color": KIND_COLORS.get(kind, "#999")},
                    "name": kind,
                    "showlegend": False,
                    "hoverinfo": "skip",
                }
            )
    return traces


def _title(text: str, y: float, size: int, color: str | None = None) -> dict[str, Any]:
    return {
        "text": f"<b>{text}</b>",
        "x": 0,
        "xref": "paper",
        "xanchor": "left",
        "y": y,
        "yref": "paper",
        "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": size} | ({"color": color} if color else {}),
    }


def assemble(lanes: list[Lane], t_end: float, top: list[list[Any]]) -> dict[str, Any]:
    """The slider then draws only the overview's phase bars, not every lane (lighter, readable)."""
    plot_h = sum(lane.height for lane in lanes) + GAP * len(lanes) + OVERVIEW_H + GAP
    height = plot_h + MARGIN_T + MARGIN_B + SLIDER
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 80, "r": 230, "t": MARGIN_T, "b": MARGIN_B},
        "barmode": "overlay",
        "hovermode": "closest",
        "dragmode": "zoom",
        "uniformtext": {"mode": "hide", "minsize": 9},
        "bargap": 0,
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 11},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#fbfbfd",
        "annotations": [],
    }
    data: list[dict[str, Any]] = []
    y = 1.0
    for i, lane in enumerate(lanes):
        n = i + 2
        top_y = y - GAP / plot_h
        bottom = top_y - lane.height / plot_h
        y = bottom
        layout[f"yaxis{n}"] = {
            "domain": [max(bottom, 0.0), max(top_y, 0.0)],
            "fixedrange": True,
            "anchor": f"x{n}",
            **lane.yaxis,
        }
        layout[f"xaxis{n}"] = {
            "matches": "x",
            "anchor": f"y{n}",
            "domain": [0, 1],
            "showticklabels": lane.key == "flame",
            "showspikes": True,
            "spikemode": "across",
            "spikethickness": 1,
            "spikedash": "dot",
            "spikecolor": "#888",
            "ticks": "",
            "showline": False,
        }
        layout["annotations"].append(_title(plotly_text(lane.title), top_y, 12))
        legend = f"legend{n}"
        if lane.legend:
            layout[legend] = {
                "x": 1.01,
                "xanchor": "left",
                "y": top_y,
                "yanchor": "top",
                "yref": "paper",
                "font": {"size": 10},
                "bgcolor": "rgba(255,255,255,0)",
                "tracegroupgap": 0,
                "itemclick": "toggle",
            }
        for trace in lane.traces:
            data.append(
                {k: v for k, v in trace.items() if not k.startswith("_")}
                | {"xaxis": f"x{n}", "yaxis": f"y{n}", "legend": legend, "meta": lane.key}
            )
    # The overview at the bottom: the x axis every lane matches, with the range slider under it.
    bottom = y - GAP / plot_h - OVERVIEW_H / plot_h
    layout["yaxis"] = {
        "domain": [max(bottom, 0.0), max(bottom + OVERVIEW_H / plot_h, 0.0)],
        "fixedrange": True,
        "range": [-0.5, 0.5],
        "showticklabels": False,
        "showgrid": False,
        "zeroline": False,
    }
    layout["xaxis"] = {
        "domain": [0, 1],
        "anchor": "y",
        "range": [0, t_end],
        "title": {"text": "seconds since the run started"},
        "rangeslider": {"visible": True, "thickness": SLIDER / height, "range": [0, t_end], "bgcolor": "#f1f3f8"},
    }
    layout["annotations"].append(
        _title(
            "Run overview (drag the handles below to select a range)", bottom + OVERVIEW_H / plot_h, 11, "#5f6b7a"
        )
    )
    data += [t | {"xaxis": "x", "yaxis": "y", "meta": "overview"} for t in overview_traces(top)]
    if not any(t.get("meta") == "overview" for t in data):
        # The slider needs a trace on its axis to know the run's extent.
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": [0, t_end],
                "y": [0, 0],
                "hoverinfo": "skip",
                "showlegend": False,
                "line": {"color": "rgba(0,0,0,0)"},
                "xaxis": "x",
                "yaxis": "y",
                "meta": "overview",
            }
        )
    if not top:
        return {"data": data, "layout": layout}
    # Epoch boundaries as thin lines through every lane.
    layout["shapes"] = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": s / 1e6,
            "x1": s / 1e6,
            "y0": 0,
            "y1": 1,
            "line": {"width": 1, "dash": "dot", "color": "rgba(80,80,120,0.35)"},
            "layer": "below",
        }
        for kind, _, s, _ in top
        if kind == "epoch"
    ][:MAX_EPOCH_LINES]
    return {"data": data, "layout": layout}
