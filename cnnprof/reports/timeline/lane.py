"""What a lane is and what a lane builder gets: the protocol every module in `lanes/` follows.

A builder takes the `LaneContext` (the run, its telemetry as series, its spans as arrays, the
time axis) and returns its lanes, top to bottom; none when it has nothing to draw, in which case
it says why in `ctx.absent` if the lane was to be expected. The registry in lanes/__init__.py
orders the builders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ...traces.metrics import label as metric_label
from ...traces.metrics import metric_parts
from ...traces.processes import ProcessSamples
from ...traces.reader import RunData
from ...traces.series import SeriesKey, TelemetrySeries
from ..text import plotly_text
from .packing import minmax_indices, seconds, values
from .spans import SpanArrays
from .stacks import StackData
from .style import PALETTE

MAX_POINTS = 2000  # per drawn telemetry series


@dataclass
class Lane:
    key: str
    title: str
    height: int
    traces: list[dict[str, Any]] = field(default_factory=list)
    yaxis: dict[str, Any] = field(default_factory=dict)
    legend: bool = True


@dataclass
class LaneContext:
    run: RunData
    tel: TelemetrySeries
    spans: SpanArrays | None  # None: no readable spans
    t_end: float  # seconds: the right end of the time axis
    stacks: StackData | None = None  # None: no stack samples
    children: list[ProcessSamples] = field(default_factory=list)  # the run's child processes, sampled
    notes: list[str] = field(default_factory=list)  # what was downsampled and how
    absent: list[str] = field(default_factory=list)  # one line per lane left out, saying why
    page: dict[str, Any] = field(default_factory=dict)  # data a lane hands to the page's script
    thinned: int = 0  # telemetry series drawn with fewer points than recorded

    def line_lane(
        self,
        key: str,
        title: str,
        height: int,
        keys: list[SeriesKey],
        yaxis: dict[str, Any],
        scale: dict[SeriesKey, float] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Lane:
        """A lane of telemetry lines, each downsampled to MAX_POINTS (min and max kept), labelled
        by the vocabulary (or `labels`, metric -> label, where the lane says more)."""
        traces = []
        for i, series_key in enumerate(keys):
            t, v = self.tel.series[series_key]
            if scale and series_key in scale:
                v = v * scale[series_key]
            idx = minmax_indices(t, v, MAX_POINTS)
            self.thinned += len(t) > len(idx)
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": plotly_text(series_label(series_key, labels)),
                    "x": seconds(t[idx]),
                    "y": values(v[idx]),
                    "line": {"width": 1.3, "color": PALETTE[i % len(PALETTE)]},
                    "hovertemplate": "%{y:.4g}<extra>%{fullData.name}</extra>",
                    "_lane": key,
                }
            )
        return Lane(key, title, height, traces, yaxis)

    def thinning_note(self) -> str | None:
        if not self.thinned:
            return None
        return (
            f"timeline: {self.thinned} telemetry series drawn with at most {MAX_POINTS} points each "
            "(min and max of each time slice kept); energy and the selection panel use every reading"
        )

    def why_missing(self, what: str, sources: tuple[str, ...]) -> str:
        """Why a telemetry lane has nothing to draw, from the sources' status in run.json."""
        status = self.run.record.telemetry.sources
        if not status and not self.tel.series:
            return (
                f"no {what}: no telemetry was recorded "
                "(telemetry off with --telemetry none, or the sampler did not start)"
            )
        reasons = []
        for source in sources:
            state = status.get(source)
            if state is None:
                continue
            reasons.append(f"{source} ran but recorded none" if state == "ok" else f"{source} {state}")
        if not reasons:
            reasons.append(f"{', '.join(sources)} {'was' if len(sources) == 1 else 'were'} not sampled")
        return f"no {what}: " + "; ".join(reasons)


class LaneBuilder(Protocol):
    def __call__(self, ctx: LaneContext) -> list[Lane]: ...


def series_label(key: SeriesKey, labels: dict[str, str] | None = None) -> str:
    source, metric = key
    gpu, base = metric_parts(metric)
    name = (labels or {}).get(base) or metric_label(metric)
    return f"{source} {gpu + ' ' if gpu else ''}{name}"
