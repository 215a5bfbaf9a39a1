"""The run's spans as arrays (read once for every lane), their hover text and bars, and what the
page's range panel needs of them: each kind's spans, or its coverage curve when there are many."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..text import plotly_text
from .packing import coverage, pack, seconds

# Spans inside a training phase: drawn one by one when few, as shares of time when many.
INNER_KINDS = ("batch", "single", "data", "forward", "backward", "optimizer", "step")
MAX_INNER_SPANS = 3000
RAW_SPANS = 60_000  # spans embedded for the range panel as such below this, as coverage above
COVERAGE_EDGES = 4001
SHARE_BUCKETS = 1200


@dataclass
class SpanArrays:
    kind: np.ndarray
    name: np.ndarray
    start: np.ndarray  # int64 ns since t0
    end: np.ndarray
    epoch: np.ndarray
    batch: np.ndarray
    caller: np.ndarray

    @classmethod
    def of(cls, spans: pd.DataFrame) -> SpanArrays | None:
        if spans.empty or not {"kind", "start_ns", "end_ns"} <= set(spans.columns):
            return None
        spans = spans.dropna(subset=["start_ns", "end_ns"])
        kind = spans["kind"].astype(str).to_numpy()
        start = spans["start_ns"].to_numpy(dtype=np.int64)
        n = len(spans)

        def column(name: str) -> np.ndarray:
            return spans[name].to_numpy() if name in spans else np.full(n, None)

        return cls(
            kind=kind,
            name=spans["name"].fillna("").astype(str).to_numpy() if "name" in spans else kind,
            start=start,
            end=np.maximum(spans["end_ns"].to_numpy(dtype=np.int64), start),
            epoch=column("epoch"),
            batch=column("batch"),
            caller=column("caller"),
        )

    def hover(self, i: int) -> str:
        k, name, s, e = self.kind[i], self.name[i], self.start[i], self.end[i]
        parts = [
            f"<b>{plotly_text(name if name and name != k else k)}</b> ({plotly_text(k)})",
            f"{(e - s) / 1e6:,.3f} ms at {s / 1e9:,.3f} s",
        ]
        where = []
        for label, value in (("epoch", self.epoch[i]), ("batch", self.batch[i])):
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                where.append(f"{label} {int(value)}")
        if where:
            parts.append(", ".join(where))
        caller = self.caller[i]
        if k == "sync" and isinstance(caller, str) and caller:
            parts.append("called from " + plotly_text(caller))
        return "<br>".join(parts)

    @property
    def many_inner(self) -> bool:
        """Too many batch and step spans to draw one by one: they become shares of time."""
        return int(np.isin(self.kind, INNER_KINDS).sum()) > MAX_INNER_SPANS


def bars(
    name: str,
    start: np.ndarray,
    end: np.ndarray,
    row: float,
    color: str,
    hover: list[str],
    lane: str,
    legend: bool = True,
) -> dict[str, Any]:
    return {
        "type": "bar",
        "orientation": "h",
        "name": plotly_text(name),
        "base": seconds(start, 5),
        "x": np.round((end - start) / 1e9, 6).tolist(),
        "y": [row] * len(start),
        "width": 0.78,
        "marker": {"color": color, "line": {"width": 0}},
        "hovertext": hover,
        "hoverinfo": "text",
        "showlegend": legend,
        "_lane": lane,
    }


def range_panel_data(sp: SpanArrays, t_end: float) -> dict[str, Any]:
    """For the range panel: time and count of each kind of span inside a window, from every span
    (none dropped for being short): as microsecond starts and durations, or coverage curves."""
    kind, name, start, end = sp.kind, sp.name, sp.start, sp.end
    labels: dict[str, np.ndarray] = {}
    for k in (*INNER_KINDS, "sync"):
        m = kind == k
        if not m.any():
            continue
        if k in ("batch", "sync"):
            for n in pd.unique(name[m]):
                labels[f"{k}:{n}"] = np.flatnonzero(m & (name == n))
        else:
            labels[k] = np.flatnonzero(m)
    out: dict[str, Any] = {"labels": {}}
    if sum(len(v) for v in labels.values()) <= RAW_SPANS:
        for lab, idx in labels.items():
            idx = idx[np.argsort(start[idx], kind="stable")]
            out["labels"][lab] = {
                "s": pack(start[idx] // 1000, "u4", delta=True),
                "d": pack((end[idx] - start[idx]) // 1000, "u4"),
            }
    else:
        edges = np.linspace(0.0, t_end * 1e9, COVERAGE_EDGES)
        out["edges_us"] = pack(np.round(edges / 1e3), "f8")
        for lab, idx in labels.items():
            covered, count = coverage(start[idx], end[idx], edges)
            out["labels"][lab] = {"c": pack(np.round(covered / 1e3), "f8"), "n": pack(count, "u4")}
    return out
