"""The report's timeline: lanes on one time axis (phases and syncs, GPU clock and activity, power,
CPU, memory, thermal, the stack samples as a flame chart) as one plotly figure, plus the compact
data the page's script uses when a time range is selected (call tree, phases, energy).

Only what is drawn is downsampled: telemetry lanes to at most `MAX_POINTS` points per series
(min/max-preserving buckets), sync marks thinned to the longest per time slice, per-step spans
turned into shares of time when there are too many to draw, flame-chart bars capped (the page
draws the ones wide enough to see at the current zoom). Aggregates (energy, call tree, phase
times) come from all the data, at most coarsened in time.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..traces import nvml_codes
from ..traces.energy import PowerSeries, power_series
from ..traces.flame import FlameBars, call_tree, function_matrix, merge_samples, sample_intervals
from ..traces.reader import RunData
from .text import plotly_text

MAX_POINTS = 2000  # per drawn telemetry series
HEATMAP_COLUMNS = 1000
MAX_SYNC_MARKS = 3000  # per sync name
MAX_INNER_SPANS = 3000  # batch / step spans drawn one by one below this, as shares of time above
SHARE_BUCKETS = 1200
FLAME_EMBED = 100_000  # merged flame bars embedded; the page draws at most FLAME_DRAW at a time
FLAME_DRAW = 3000
FLAME_MAX_DEPTH = 64
SAMPLE_ROWS = 300_000  # (time bucket, node, weight) rows for the range call tree
DETAIL_DRAW = 2000  # step spans the page draws one by one for a narrow range
RAW_SPANS = 60_000  # inner spans embedded as such below this, as cumulative coverage above
COVERAGE_EDGES = 4001
POWER_POINTS = 6000  # per embedded power series (energy of a range)

TOP_PHASES = ("epoch", "train", "validation", "test", "single_inference")
INNER_KINDS = ("batch", "single", "data", "forward", "backward", "optimizer", "step")
STEP_KINDS = ("data", "forward", "backward", "optimizer", "step", "sync")

PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
    "#1f77b4",
    "#8c564b",
)
KIND_COLORS = {
    "epoch": "#9fb6d1",
    "train": "#4c78a8",
    "validation": "#72b7b2",
    "test": "#54a24b",
    "single_inference": "#b279a2",
    "data": "#eeca3b",
    "forward": "#9467bd",
    "backward": "#f58518",
    "optimizer": "#8c564b",
    "step": "#bcbd22",
    "sync": "#e45756",
    "batch:train": "#4c78a8",
    "batch:val": "#72b7b2",
    "batch:test": "#54a24b",
    "single": "#e377c2",
}
SYNC_COLORS = ("#e45756", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")

GPU_PREFIX = re.compile(r"^(gpu\d+)\.")


@dataclass
class Lane:
    key: str
    title: str
    height: int
    traces: list[dict[str, Any]] = field(default_factory=list)
    yaxis: dict[str, Any] = field(default_factory=dict)
    legend: bool = True


@dataclass
class Timeline:
    figure: dict[str, Any]
    data: dict[str, Any]  # for the page's script (range selection)
    absent: list[str]  # one line per lane left out, saying why
    notes: list[str]  # what was downsampled and how


# -- small helpers -------------------------------------------------------------------------------
def _seconds(ns: np.ndarray | Iterable[float], digits: int = 4) -> list[float]:
    return np.round(np.asarray(ns, dtype=np.float64) / 1e9, digits).tolist()


def _values(v: np.ndarray, digits: int = 3) -> list[float | None]:
    v = np.asarray(v, dtype=np.float64)
    out = np.round(v, digits).tolist()
    if np.isnan(v).any():
        out = [None if x != x else x for x in out]
    return out


_DTYPES = {"u1": "<u1", "u2": "<u2", "u4": "<u4", "i4": "<i4", "f4": "<f4", "f8": "<f8"}


def pack(values: np.ndarray | list[Any], kind: str, delta: bool = False) -> dict[str, Any]:
    """A numeric array for the page's script, as base64 of little-endian `kind` (u1, u2, u4, i4,
    f4, f8); with `delta`, the differences of a non-decreasing array (the script sums them back).
    Half the size of the same numbers as JSON text, and decoded in a blink."""
    a = np.asarray(values)
    if delta:
        a = np.diff(a, prepend=0)
    if kind.startswith("u") and a.size and (a.min() < 0 or a.max() > np.iinfo(_DTYPES[kind]).max):
        raise ValueError(f"values out of range for {kind}")
    raw = np.ascontiguousarray(a.astype(_DTYPES[kind])).tobytes()
    return {"p": kind, "d": int(delta), "b64": base64.b64encode(raw).decode("ascii")}


def _index_kind(n: int) -> str:
    return "u2" if n < 65536 else "u4"


def minmax_indices(t: np.ndarray, v: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ~max_points points that keep each time bucket's min and max (the shape
    of a series survives: spikes and dips are not averaged away). t must be sorted."""
    n = len(t)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 2)
    span = float(t[-1] - t[0]) or 1.0
    b = np.minimum(((t - t[0]) / span * buckets).astype(np.int64), buckets - 1)
    order = np.lexsort((v, b))  # by bucket, then value
    sb = b[order]
    first = np.flatnonzero(np.r_[True, sb[1:] != sb[:-1]])
    last = np.r_[first[1:], n] - 1
    keep = np.unique(np.concatenate((order[first], order[last])))
    return keep


def _thin_longest(start: np.ndarray, dur: np.ndarray, max_n: int, t_end: float) -> np.ndarray:
    """Indices of the longest item per time slice, at most max_n slices."""
    if len(start) <= max_n:
        return np.arange(len(start))
    b = np.minimum((start / max(t_end, 1.0) * max_n).astype(np.int64), max_n - 1)
    order = np.lexsort((dur, b))
    sb = b[order]
    last = np.r_[np.flatnonzero(sb[1:] != sb[:-1]), len(sb) - 1]
    return np.sort(order[last])


def coverage(starts: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(covered ns in [0, x], spans started before x) at each x of `edges`."""
    s = np.sort(starts.astype(np.float64))
    e = np.sort(ends.astype(np.float64))
    cs = np.r_[0.0, np.cumsum(s)]
    ce = np.r_[0.0, np.cumsum(e)]
    ns = np.searchsorted(s, edges, side="left")
    ne = np.searchsorted(e, edges, side="left")
    covered = edges * (ns - ne) - (cs[ns] - ce[ne])
    return covered, ns


def _metric_parts(metric: str) -> tuple[str, str]:
    """("gpu1", "power_w") for "gpu1.power_w"; ("", metric) otherwise."""
    m = GPU_PREFIX.match(metric)
    return (m.group(1), metric[m.end() :]) if m else ("", metric)


# -- telemetry ----------------------------------------------------------------------------------
class Telemetry:
    """The telemetry table split into series, (source, metric) -> (t_ns, values), sorted by time."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.series: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        if df.empty or not {"t_ns", "source", "metric", "value"} <= set(df.columns):
            return
        df = df.dropna(subset=["t_ns", "value"])
        for (source, metric), g in df.groupby(["source", "metric"], sort=True):
            t = g["t_ns"].to_numpy(dtype=np.int64)
            v = g["value"].to_numpy(dtype=np.float64)
            if len(t) > 1 and np.any(np.diff(t) < 0):
                order = np.argsort(t, kind="stable")
                t, v = t[order], v[order]
            self.series[(str(source), str(metric))] = (t, v)

    def find(self, *bases: str) -> list[tuple[str, str]]:
        """The series whose metric (less a gpuN. prefix) is one of `bases`, in the order asked."""
        out = []
        for base in bases:
            out += [key for key in self.series if _metric_parts(key[1])[1] == base]
        return out

    def matching(self, pattern: str) -> list[tuple[str, str]]:
        rx = re.compile(pattern)
        return [key for key in self.series if rx.fullmatch(key[1])]

    def max_t(self) -> int:
        return max((int(t[-1]) for t, _ in self.series.values() if len(t)), default=0)


def _series_label(key: tuple[str, str], pretty: dict[str, str] | None = None) -> str:
    source, metric = key
    gpu, base = _metric_parts(metric)
    name = (pretty or {}).get(base, base)
    return f"{source} {gpu + ' ' if gpu else ''}{name}"


def _line_traces(
    tel: Telemetry,
    keys: list[tuple[str, str]],
    lane: str,
    pretty: dict[str, str] | None = None,
    scale: dict[tuple[str, str], float] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    traces, thinned = [], 0
    for i, key in enumerate(keys):
        t, v = tel.series[key]
        if scale and key in scale:
            v = v * scale[key]
        idx = minmax_indices(t, v, MAX_POINTS)
        thinned += len(t) > len(idx)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": plotly_text(_series_label(key, pretty)),
                "x": _seconds(t[idx]),
                "y": _values(v[idx]),
                "line": {"width": 1.3, "color": PALETTE[i % len(PALETTE)]},
                "hovertemplate": "%{y:.4g}<extra>%{fullData.name}</extra>",
                "_lane": lane,
            }
        )
    return traces, thinned


# -- why a lane is missing ----------------------------------------------------------------------
def _source_status(run: RunData) -> dict[str, str]:
    sources = (run.meta.get("telemetry") or {}).get("sources") or {}
    return {str(k): str(v) for k, v in sources.items()} if isinstance(sources, dict) else {}


def why_missing(run: RunData, what: str, sources: tuple[str, ...], tel: Telemetry) -> str:
    status = _source_status(run)
    if not status and not tel.series:
        return (
            f"no {what}: no telemetry was recorded (telemetry off with --telemetry none, or the sampler did not start)"
        )
    reasons = []
    for source in sources:
        state = status.get(source)
        if state is None:
            continue
        if state == "ok":
            reasons.append(f"{source} ran but recorded none")
        else:
            reasons.append(f"{source} {state}")
    if not reasons:
        asked = ", ".join(sources)
        reasons.append(f"{asked} {'was' if len(sources) == 1 else 'were'} not sampled")
    return f"no {what}: " + "; ".join(reasons)


# -- the phases lane ----------------------------------------------------------------------------
def _bars(
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
        "base": _seconds(start, 5),
        "x": np.round((end - start) / 1e9, 6).tolist(),
        "y": [row] * len(start),
        "width": 0.78,
        "marker": {"color": color, "line": {"width": 0}},
        "hovertext": hover,
        "hoverinfo": "text",
        "showlegend": legend,
        "_lane": lane,
    }


def _span_hover(kind: str, name: str, s: int, e: int, epoch: Any, batch: Any, caller: Any = None) -> str:
    parts = [
        f"<b>{plotly_text(name if name and name != kind else kind)}</b> ({plotly_text(kind)})",
        f"{(e - s) / 1e6:,.3f} ms at {s / 1e9:,.3f} s",
    ]
    where = []
    if epoch is not None and not (isinstance(epoch, float) and math.isnan(epoch)):
        where.append(f"epoch {int(epoch)}")
    if batch is not None and not (isinstance(batch, float) and math.isnan(batch)):
        where.append(f"batch {int(batch)}")
    if where:
        parts.append(", ".join(where))
    if isinstance(caller, str) and caller:
        parts.append("called from " + plotly_text(caller))
    return "<br>".join(parts)


def phases_lane(run: RunData, t_end: float, notes: list[str]) -> tuple[list[Lane], dict[str, Any]]:
    """The phases lane (and, for long runs, a lane of step shares), and the phase data for the page."""
    spans = run.spans
    data: dict[str, Any] = {"top": [], "labels": {}}
    if spans.empty or not {"kind", "start_ns", "end_ns"} <= set(spans.columns):
        return [], data
    spans = spans.dropna(subset=["start_ns", "end_ns"])
    kind = spans["kind"].astype(str).to_numpy()
    name = spans["name"].fillna("").astype(str).to_numpy() if "name" in spans else kind
    start = spans["start_ns"].to_numpy(dtype=np.int64)
    end = np.maximum(spans["end_ns"].to_numpy(dtype=np.int64), start)
    epoch = spans["epoch"].to_numpy() if "epoch" in spans else np.full(len(spans), None)
    batch = spans["batch"].to_numpy() if "batch" in spans else np.full(len(spans), None)
    caller = spans["caller"].to_numpy() if "caller" in spans else np.full(len(spans), None)

    lane = Lane("phases", "Phases and sync calls", 0, yaxis={})
    rows: list[str] = []

    def row(label: str) -> int:
        rows.append(label)
        return len(rows) - 1

    # Epochs, then train / validation / test / single inference.
    for kinds, label in ((("epoch",), "epoch"), (("train", "validation", "test", "single_inference"), "phase")):
        sel = np.isin(kind, kinds)
        if not sel.any():
            continue
        r = row(label)
        for k in kinds:
            m = kind == k
            if not m.any():
                continue
            idx = np.flatnonzero(m)
            hover = [_span_hover(k, name[i], start[i], end[i], epoch[i], batch[i]) for i in idx]
            lane.traces.append(
                _bars(
                    k.replace("_", " "),
                    start[idx],
                    end[idx],
                    r,
                    KIND_COLORS.get(k, "#888"),
                    hover,
                    "phases",
                    legend=k != "epoch",
                )
            )
            data["top"] += [[k, str(name[i]), int(start[i] // 1000), int(end[i] // 1000)] for i in idx]

    # Batches and the parts of a step: one by one when few, as shares of time when many.
    inner = np.isin(kind, INNER_KINDS)
    share_lane: Lane | None = None
    if inner.any():
        if inner.sum() <= MAX_INNER_SPANS:
            for kinds, label in (
                (("batch", "single"), "batch"),
                (("data", "forward", "backward", "optimizer", "step"), "step"),
            ):
                sel = np.isin(kind, kinds)
                if not sel.any():
                    continue
                r = row(label)
                labels = sorted({f"{k}:{n}" if k == "batch" else k for k, n in zip(kind[sel], name[sel])})
                for lab in labels:
                    k, _, n = lab.partition(":")
                    m = (kind == k) & ((name == n) if n else True)
                    idx = np.flatnonzero(m)
                    hover = [_span_hover(k, name[i], start[i], end[i], epoch[i], batch[i]) for i in idx]
                    title = f"{n} batch" if k == "batch" else k
                    lane.traces.append(
                        _bars(
                            title,
                            start[idx],
                            end[idx],
                            r,
                            KIND_COLORS.get(lab, "#999"),
                            hover,
                            "phases",
                            legend=label == "step",
                        )
                    )
        else:
            share_lane = _share_lane(kind, start, end, t_end)
            detail = int(inner.sum() + (kind == "sync").sum()) <= RAW_SPANS
            notes.append(
                f"timeline: {int(inner.sum()):,} batch and step spans are drawn as shares of time per "
                f"{t_end / SHARE_BUCKETS:.3g} s slice"
                + (f", and one by one once a range holds at most {DETAIL_DRAW:,} of them" if detail else "")
            )
            if detail:
                # Empty rows the page fills with the spans of the range when it is narrow enough.
                data["detail"] = {"max": DETAIL_DRAW, "colors": KIND_COLORS, "rows": {}}
                for label in ("batch", "step"):
                    data["detail"]["rows"][label] = row(label)
                    lane.traces.append(
                        _bars(f"{label} (zoom in)", np.zeros(0), np.zeros(0), 0, "#999", [], "phases", legend=False)
                        | {"uid": f"detail-{label}", "y": []}
                    )

    # Sync calls as marks, coloured by what was called.
    sync = kind == "sync"
    if sync.any():
        r = row("sync")
        if "detail" in data:
            data["detail"]["rows"]["sync"] = r
            lane.traces.append(
                _bars("sync (zoom in)", np.zeros(0), np.zeros(0), 0, "#999", [], "phases", legend=False)
                | {"uid": "detail-sync", "y": []}
            )
        names = pd.Series(name[sync]).value_counts().index.tolist()
        for j, sname in enumerate(names):
            idx = np.flatnonzero(sync & (name == sname))
            keep = idx[
                _thin_longest(start[idx].astype(float), (end - start)[idx].astype(float), MAX_SYNC_MARKS, t_end * 1e9)
            ]
            if len(keep) < len(idx):
                notes.append(
                    f"timeline: {len(keep):,} of {len(idx):,} {sname} sync marks drawn (the longest per time slice)"
                )
            hover = [_span_hover("sync", name[i], start[i], end[i], epoch[i], batch[i], caller[i]) for i in keep]
            lane.traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": plotly_text(f"sync: {sname}"),
                    "x": _seconds((start[keep] + end[keep]) / 2, 5),
                    "y": [r] * len(keep),
                    "marker": {
                        "symbol": "line-ns-open",
                        "size": 14,
                        "line": {"width": 2},
                        "color": SYNC_COLORS[j % len(SYNC_COLORS)],
                    },
                    "hovertext": hover,
                    "hoverinfo": "text",
                    "_lane": "phases",
                }
            )

    # For the selection panel: time and count of each kind of span inside a window.
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
    total = sum(len(v) for v in labels.values())
    if total <= RAW_SPANS:
        for lab, idx in labels.items():
            idx = idx[np.argsort(start[idx], kind="stable")]
            data["labels"][lab] = {
                "s": pack(start[idx] // 1000, "u4", delta=True),
                "d": pack((end[idx] - start[idx]) // 1000, "u4"),
            }
    else:
        edges = np.linspace(0.0, t_end * 1e9, COVERAGE_EDGES)
        data["edges_us"] = pack(np.round(edges / 1e3), "f8")
        for lab, idx in labels.items():
            covered, count = coverage(start[idx], end[idx], edges)
            data["labels"][lab] = {"c": pack(np.round(covered / 1e3), "f8"), "n": pack(count, "u4")}
    if rows:
        lane.height = 26 * len(rows) + 30
        lane.yaxis = {
            "tickvals": list(range(len(rows))),
            "ticktext": rows,
            "range": [len(rows) - 0.5, -0.5],
            "showgrid": False,
            "zeroline": False,
        }
    lanes = [lane] if rows else []
    if share_lane is not None:
        lanes.append(share_lane)
    return lanes, data


def _share_lane(kind: np.ndarray, start: np.ndarray, end: np.ndarray, t_end: float) -> Lane:
    edges = np.linspace(0.0, t_end * 1e9, SHARE_BUCKETS + 1)
    width = np.diff(edges)
    centers = (edges[:-1] + edges[1:]) / 2
    lane = Lane("steps", "Share of time in each part of a step", 120, yaxis={"range": [0, 100], "ticksuffix": " %"})
    for k in STEP_KINDS:
        m = kind == k
        if not m.any():
            continue
        covered, _ = coverage(start[m], end[m], edges)
        share = np.clip(np.diff(covered) / width * 100, 0, 100)
        lane.traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": k,
                "x": _seconds(centers),
                "y": _values(share, 2),
                "stackgroup": "steps",
                "line": {"width": 0.5, "color": KIND_COLORS.get(k, "#999")},
                "hovertemplate": "%{y:.1f} %<extra>" + k + "</extra>",
                "_lane": "steps",
            }
        )
    return lane


# -- hardware lanes -----------------------------------------------------------------------------
def hardware_lanes(run: RunData, tel: Telemetry, t_end: float, absent: list[str], notes: list[str]) -> list[Lane]:
    lanes: list[Lane] = []
    thinned = 0

    def lines(
        key: str,
        title: str,
        height: int,
        keys: list[tuple[str, str]],
        yaxis: dict[str, Any],
        pretty: dict[str, str] | None = None,
        scale: dict[tuple[str, str], float] | None = None,
    ) -> None:
        nonlocal thinned
        traces, n = _line_traces(tel, keys, key, pretty, scale)
        thinned += n
        lanes.append(Lane(key, title, height, traces, yaxis))

    gpu_src = ("powermetrics", "nvml")
    keys = tel.find("gpu_freq_mhz", "sm_clock_mhz")
    if keys:
        lines("gpu_clock", "GPU clock", 110, keys, {"ticksuffix": " MHz", "rangemode": "tozero"})
        lanes[-1].traces += _clock_event_traces(tel)
    else:
        absent.append(why_missing(run, "GPU clock lane", gpu_src, tel))
    keys = tel.find("gpu_active_pct", "gpu_util_pct", "mem_util_pct")
    if keys:
        lines("gpu_activity", "GPU activity", 110, keys, {"range": [0, 105], "ticksuffix": " %"})
    else:
        absent.append(why_missing(run, "GPU activity lane", gpu_src, tel))
    keys = [k for k in tel.series if k[1].endswith("power_w")]
    order = {"combined_power_w": 0, "cpu_power_w": 1, "gpu_power_w": 2, "ane_power_w": 3}
    keys.sort(key=lambda k: (k[0], order.get(_metric_parts(k[1])[1], 9), k[1]))
    if keys:
        pretty = {
            "combined_power_w": "total (CPU+GPU+ANE)",
            "cpu_power_w": "CPU",
            "gpu_power_w": "GPU",
            "ane_power_w": "ANE",
            "power_w": "GPU board",
        }
        lines("power", "Power", 130, keys, {"ticksuffix": " W", "rangemode": "tozero"}, pretty)
    else:
        absent.append(why_missing(run, "power lane", ("powermetrics", "nvml", "rapl"), tel))

    clusters = tel.find("e_cluster_active_pct", "p_cluster_active_pct")
    clusters = clusters or tel.matching(r"cluster\.[^.]+\.active_pct")
    hybrid = tel.find("p_cores_busy_pct", "e_cores_busy_pct")
    per_core = tel.matching(r"(cpu|core)\.\d+\.(busy|active)_pct")
    cpu_lines = clusters + hybrid
    if cpu_lines:
        extra = tel.find("cpu_busy_pct")
        proc = tel.find("proc_cpu_pct")
        cpus = (run.meta.get("host") or {}).get("logical_cpus")
        scale = {k: 1.0 / cpus for k in proc} if isinstance(cpus, int) and cpus > 0 else {}
        pretty = {
            "e_cluster_active_pct": "E cluster",
            "p_cluster_active_pct": "P cluster",
            "p_cores_busy_pct": "P cores",
            "e_cores_busy_pct": "E cores",
            "cpu_busy_pct": "all CPUs",
            "proc_cpu_pct": "training process (share of all CPUs)",
        }
        lines(
            "cpu",
            "CPU clusters (busy)",
            120,
            cpu_lines + extra + (proc if scale else []),
            {"range": [0, 105], "ticksuffix": " %"},
            pretty,
            scale,
        )
        freq = tel.find("e_cluster_freq_mhz", "p_cluster_freq_mhz") or tel.matching(r"cluster\.[^.]+\.freq_mhz")
        if freq:
            lines(
                "cpu_clock",
                "CPU cluster clock",
                100,
                freq,
                {"ticksuffix": " MHz", "rangemode": "tozero"},
                {"e_cluster_freq_mhz": "E cluster", "p_cluster_freq_mhz": "P cluster"},
            )
    elif per_core:
        lanes.append(_heatmap_lane(tel, per_core, t_end))
    else:
        absent.append(why_missing(run, "CPU lane", ("powermetrics", "procfs"), tel))

    keys = [k for k in tel.series if _metric_parts(k[1])[1].endswith("_mb")]
    if keys:
        pretty = {"mem_used_mb": "device memory used", "proc_rss_mb": "process RSS"}
        lines("memory", "Memory", 110, keys, {"ticksuffix": " MiB", "rangemode": "tozero"}, pretty)
        _add_peak_memory(run, lanes[-1])
    else:
        absent.append(why_missing(run, "memory lane", ("nvml", "procfs"), tel))

    keys = tel.find("temp_c", "thermal_pressure_level")
    if keys:
        yaxis: dict[str, Any] = {"rangemode": "tozero"}
        if all(_metric_parts(k[1])[1] == "thermal_pressure_level" for k in keys):
            yaxis = {
                "range": [-0.2, 4.2],
                "tickvals": [0, 1, 2, 3, 4],
                "ticktext": ["Nominal", "Moderate", "Heavy", "Trapping", "Sleeping"],
            }
        lines(
            "thermal",
            "Thermal",
            90,
            keys,
            yaxis,
            {"temp_c": "temperature (°C)", "thermal_pressure_level": "thermal pressure"},
        )
    if thinned:
        notes.append(
            f"timeline: {thinned} telemetry series drawn with at most {MAX_POINTS} points each "
            "(min and max of each time slice kept); energy and the selection panel use every reading"
        )
    return lanes


MAX_CLOCK_EVENTS = 500


def _clock_event_traces(tel: Telemetry) -> list[dict[str, Any]]:
    """Where NVML says the clocks were held down (power cap, thermal, ...): a mark at each change."""
    traces = []
    for key in tel.find("clock_event_reasons"):
        t, v = tel.series[key]
        mask = np.nan_to_num(v).astype(np.int64) & ~nvml_codes.BENIGN_BITS
        change = np.flatnonzero((mask != 0) & np.r_[True, mask[1:] != mask[:-1]])[:MAX_CLOCK_EVENTS]
        if not len(change):
            continue
        hover = [
            "<b>clocks held down</b><br>"
            + plotly_text(", ".join(nvml_codes.decode_clock_event_reasons(int(v[i]))))
            + f"<br>from {t[i] / 1e9:,.2f} s"
            for i in change
        ]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": plotly_text(f"{_series_label(key)} (slowdown)"),
                "x": _seconds(t[change]),
                "y": [0] * len(change),
                "hovertext": hover,
                "hoverinfo": "text",
                "marker": {"symbol": "x", "size": 9, "color": "#d62728"},
            }
        )
    return traces


def _add_peak_memory(run: RunData, lane: Lane) -> None:
    m, spans = run.metrics, run.spans
    if m.empty or "peak_memory_mb" not in m or spans.empty:
        return
    ends = spans[spans["kind"] == "epoch"]
    if ends.empty:
        return
    end_of = {int(e): int(t) for e, t in zip(ends["epoch"], ends["end_ns"]) if pd.notna(e)}
    rows = [(end_of[int(e)], v) for e, v in zip(m["epoch"], m["peak_memory_mb"]) if pd.notna(v) and int(e) in end_of]
    if rows:
        lane.traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "framework peak (per epoch)",
                "x": _seconds([r[0] for r in rows]),
                "y": _values(np.array([r[1] for r in rows])),
                "marker": {"symbol": "diamond", "size": 8, "color": "#e45756"},
                "_lane": lane.key,
            }
        )


def _heatmap_lane(tel: Telemetry, keys: list[tuple[str, str]], t_end: float) -> Lane:
    def core_no(key: tuple[str, str]) -> int:
        return int(key[1].split(".")[1])

    keys = sorted(keys, key=core_no)
    cols = min(HEATMAP_COLUMNS, max(1, max(len(tel.series[k][0]) for k in keys)))
    edges = np.linspace(0.0, t_end * 1e9, cols + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    z = []
    for key in keys:
        t, v = tel.series[key]
        b = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, cols - 1)
        sums = np.bincount(b, weights=v, minlength=cols)
        counts = np.bincount(b, minlength=cols)
        with np.errstate(invalid="ignore", divide="ignore"):
            row = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        z.append(_values(row, 1))
    n = len(keys)
    source = keys[0][0]
    return Lane(
        "cores",
        f"CPU cores, busy % ({source}; no E/P clusters on this machine)",
        min(260, 14 * n + 40),
        [
            {
                "type": "heatmap",
                "name": "CPU cores",
                "x": _seconds(centers),
                "y": [f"cpu {core_no(k)}" for k in keys],
                "z": z,
                "zmin": 0,
                "zmax": 100,
                "colorscale": "Viridis",
                "showscale": False,
                "hovertemplate": "%{y}: %{z:.0f} % at %{x:.1f} s<extra></extra>",
                "_lane": "cores",
            }
        ],
        {"autorange": "reversed", "showgrid": False},
        legend=False,
    )


# -- stack samples ------------------------------------------------------------------------------
def _category(file: str, library: bool) -> str:
    if file.startswith("<"):
        return "built-in"
    for pkg in ("torch", "mlx", "numpy"):
        if f"/{pkg}/" in file or file.startswith(f"{pkg}/"):
            return pkg
    if "site-packages" in file or "dist-packages" in file:
        return "other libraries"
    if "cnnprof/" in file and library:
        return "cnnprof"
    return "python stdlib" if library else "your code"


CATEGORY_COLORS = {
    "your code": "#4c78a8",
    "torch": "#f58518",
    "mlx": "#54a24b",
    "numpy": "#72b7b2",
    "built-in": "#e45756",
    "other libraries": "#b279a2",
    "python stdlib": "#9d9d9d",
    "cnnprof": "#c7b299",
}


def stack_data(run: RunData, t_end: float, notes: list[str]) -> tuple[Lane | None, dict[str, Any] | None]:
    """The flame-chart lane (bars filled in by the page) and the samples for the range call tree."""
    stacks = run.stacks
    samples = run.samples
    if samples.empty or not stacks.get("stacks"):
        return None, None
    matrix, funcs = function_matrix(stacks)
    intervals = sample_intervals(samples, matrix.shape[0])
    if len(intervals) == 0:
        return None, None
    bars = merge_samples(intervals, matrix)
    tree = call_tree(matrix)

    # Functions and their colour categories.
    cats = [_category(f, lib) for f, lib in zip(funcs.file, funcs.library)]
    cat_names = sorted(set(cats), key=lambda c: list(CATEGORY_COLORS).index(c) if c in CATEGORY_COLORS else 99)
    cat_index = {c: i for i, c in enumerate(cat_names)}

    flame = _flame_payload(bars, notes)
    depth = int(min(FLAME_MAX_DEPTH, (bars.depth.max() + 1) if len(bars) else 1))

    # Call tree rows: (time bucket, node, weight), as fine in time as SAMPLE_ROWS allows.
    node = tree.leaf[intervals.stack]
    ok = node >= 0
    start, weight, node = intervals.start_ns[ok], intervals.weight_ns[ok], node[ok]
    span = max(t_end * 1e9, float(intervals.end_ns.max()), 1.0)
    n_nodes = max(len(tree.parent), 1)
    rows = None
    for buckets in (40000, 20000, 10000, 5000, 2500, 1200, 600, 300, 150, 60, 20, 1):
        b = np.minimum((start / span * buckets).astype(np.int64), buckets - 1)
        key = b * n_nodes + node
        uniq, inverse = np.unique(key, return_inverse=True)
        if len(uniq) <= SAMPLE_ROWS or buckets == 1:
            w = np.bincount(inverse, weights=weight)
            rows = (uniq // n_nodes, uniq % n_nodes, w, buckets)
            break
    assert rows is not None
    ub, un, uw, buckets = rows
    bucket_ns = span / buckets
    if buckets < 40000:
        notes.append(
            f"selection call tree: samples aggregated per {bucket_ns / 1e6:,.1f} ms slice "
            f"({len(intervals):,} samples, {len(un):,} rows); a range's edges are prorated"
        )

    payload = {
        "funcs": {
            "name": funcs.function,
            "where": [funcs.where(i) for i in range(len(funcs))],
            "cat": [cat_index[c] for c in cats],
        },
        "cats": [[c, CATEGORY_COLORS.get(c, PALETTE[i % len(PALETTE)])] for i, c in enumerate(cat_names)],
        "tree": {
            "parent": pack(tree.parent, "i4"),
            "func": pack(tree.frame, _index_kind(len(funcs))),
            "first": pack(tree.first, "u1"),
        },
        "rows": {
            "bucket_us": bucket_ns / 1e3,
            "count": pack(np.bincount(ub, minlength=buckets), "u4"),
            "n": pack(un, _index_kind(n_nodes)),
            "w": pack(np.round(uw / 1e3), "u4"),
        },
        "flame": flame,
        "sampled_us": int(weight.sum() // 1000),
        "n_samples": len(intervals),
    }
    lane = Lane(
        "flame",
        "Stack samples (flame chart: root at the top; zoom in for detail)",
        min(560, 9 * depth + 40),
        [
            {
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
        ],
        {
            "range": [depth - 0.5, -0.5],
            "showticklabels": False,
            "showgrid": False,
            "zeroline": False,
            "title": {"text": "depth"},
        },
        legend=False,
    )
    return lane, payload


def _flame_payload(bars: FlameBars, notes: list[str]) -> dict[str, Any]:
    keep = bars.depth < FLAME_MAX_DEPTH
    dur = (bars.end_ns - bars.start_ns)[keep]
    idx = np.flatnonzero(keep)
    if len(idx) > FLAME_EMBED:
        top = np.argpartition(-dur, FLAME_EMBED - 1)[:FLAME_EMBED]
        threshold = dur[top].min()
        notes.append(
            f"flame chart: the {FLAME_EMBED:,} longest of {len(idx):,} merged bars are kept (≥ "
            f"{threshold / 1e6:,.2f} ms); the call tree of a selection uses every sample"
        )
        idx = np.sort(idx[top])
    s = bars.start_ns[idx] // 1000
    d = np.maximum((bars.end_ns[idx] - bars.start_ns[idx]) // 1000, 1)
    n_funcs = int(bars.frame.max()) + 1 if len(bars) else 1
    return {
        "s": pack(s, "u4", delta=True),
        "d": pack(d, "u4"),
        "z": pack(bars.depth[idx], "u1"),
        "f": pack(bars.frame[idx], _index_kind(n_funcs)),
        "draw": FLAME_DRAW,
    }


# -- energy -------------------------------------------------------------------------------------
def power_payload(series: dict[str, PowerSeries]) -> dict[str, Any]:
    """Power series for the page's energy of a range. Small series go as they are (integrated there
    as traces/energy.py does); long ones as window averages over POWER_POINTS slices whose energy is
    exact (so only a range's two edge slices are approximate)."""
    out: dict[str, Any] = {}
    for key, s in series.items():
        if len(s.t_ns) == 0:
            continue
        if len(s.t_ns) <= POWER_POINTS:
            out[key] = {
                "t": pack(np.round(s.t_ns / 1e3), "f8"),
                "w": pack(s.watts, "f4"),
                "win": pack(np.round(s.window_ns / 1e3), "f8") if s.window_ns is not None else None,
            }
            continue
        lo = float(s.t_ns[0] - (s.window_ns[0] if s.window_ns is not None else 0))
        hi = float(s.t_ns[-1])
        edges = np.linspace(lo, hi, POWER_POINTS + 1)
        cum = cumulative_energy(s, edges)
        width = np.diff(edges)
        out[key] = {
            "t": pack(np.round(edges[1:] / 1e3), "f8"),
            "w": pack(np.diff(cum) / width * 1e9, "f4"),
            "win": pack(width / 1e3, "f8"),
        }
    return out


def cumulative_energy(s: PowerSeries, x: np.ndarray) -> np.ndarray:
    """Joules of a power series from its start up to each x (energy.py's integration rules)."""
    t = s.t_ns.astype(np.float64)
    w = s.watts
    if s.window_ns is not None:
        lo = t - s.window_ns
        per = w * np.maximum(t - lo, 0)
        cum = np.r_[0.0, np.cumsum(per)]
        # Rows are sorted and windows do not overlap: rows ending before x count whole, the row
        # whose window holds x counts in part.
        j = np.searchsorted(t, x, side="left")  # first row ending at or after x
        part = np.where(
            j < len(t), w[np.minimum(j, len(t) - 1)] * np.clip(x - lo[np.minimum(j, len(t) - 1)], 0, None), 0.0
        )
        part = np.minimum(part, np.where(j < len(t), per[np.minimum(j, len(t) - 1)], 0.0))
        return (cum[j] + part) / 1e9
    seg = (w[1:] + w[:-1]) / 2 * np.diff(t)
    cum = np.r_[0.0, np.cumsum(seg)]
    xc = np.clip(x, t[0], t[-1])
    i = np.clip(np.searchsorted(t, xc, side="right") - 1, 0, len(t) - 1)
    wx = np.interp(xc, t, w)
    return (cum[i] + (w[i] + wx) / 2 * (xc - t[i])) / 1e9


# -- the figure ---------------------------------------------------------------------------------
def _overview_traces(top: list[list[Any]]) -> list[dict[str, Any]]:
    """Epochs and phases as thin bars: what the range slider shows of the run."""
    traces = []
    for kind in ("train", "validation", "test", "single_inference"):
        spans = [p for p in top if p[0] == kind]
        if spans:
            s = np.array([p[2] for p in spans], dtype=np.float64) * 1e3
            e = np.array([p[3] for p in spans], dtype=np.float64) * 1e3
            traces.append(
                {
                    "type": "bar",
                    "orientation": "h",
                    "base": _seconds(s, 5),
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


def assemble(lanes: list[Lane], t_end: float, top: list[list[Any]]) -> dict[str, Any]:
    """One figure: each lane has its own y axis and its own x axis matching the overview's x axis
    (`xaxis`, at the bottom, with the range slider). The slider then draws only the overview's
    phase bars, not every lane (lighter, and readable)."""
    gap = 34
    overview_h = 22
    slider = 56
    margin_t, margin_b = 10, 40
    plot_h = sum(lane.height for lane in lanes) + gap * len(lanes) + overview_h + gap
    height = plot_h + margin_t + margin_b + slider
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 80, "r": 230, "t": margin_t, "b": margin_b},
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
        top_y = y - gap / plot_h
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
        layout["annotations"].append(
            {
                "text": f"<b>{plotly_text(lane.title)}</b>",
                "x": 0,
                "xref": "paper",
                "xanchor": "left",
                "y": top_y,
                "yref": "paper",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 12},
            }
        )
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
    bottom = y - gap / plot_h - overview_h / plot_h
    layout["yaxis"] = {
        "domain": [max(bottom, 0.0), max(bottom + overview_h / plot_h, 0.0)],
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
        "rangeslider": {"visible": True, "thickness": slider / height, "range": [0, t_end], "bgcolor": "#f1f3f8"},
    }
    layout["annotations"].append(
        {
            "text": "<b>Run overview (drag the handles below to select a range)</b>",
            "x": 0,
            "xref": "paper",
            "xanchor": "left",
            "y": bottom + overview_h / plot_h,
            "yref": "paper",
            "yanchor": "bottom",
            "showarrow": False,
            "font": {"size": 11, "color": "#5f6b7a"},
        }
    )
    data += [t | {"xaxis": "x", "yaxis": "y", "meta": "overview"} for t in _overview_traces(top)]
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
    return {"data": data, "layout": layout}


def build_timeline(run: RunData) -> Timeline:
    notes: list[str] = []
    absent: list[str] = []
    tel = Telemetry(run.telemetry)
    t_end_ns = max(run.duration_ns, tel.max_t(), int(run.meta.get("duration_ns") or 0))
    if not run.samples.empty and "t_ns" in run.samples and "dt_ns" in run.samples:
        t_end_ns = max(t_end_ns, int((run.samples["t_ns"] + run.samples["dt_ns"]).max()))
    t_end = max(t_end_ns / 1e9, 1e-3)

    lanes, phase_data = phases_lane(run, t_end, notes)
    if not lanes:
        absent.append("no phases lane: no spans were recorded (spans.parquet missing or empty)")
    lanes += hardware_lanes(run, tel, t_end, absent, notes)
    flame_lane, stack_payload = stack_data(run, t_end, notes)
    if flame_lane is not None:
        lanes.append(flame_lane)
    else:
        mode = (run.meta.get("profiler") or {}).get("mode")
        why = (
            f"the run used --profiler {mode}"
            if mode in ("cprofile", "none")
            else "samples.parquet or stacks.json is missing or empty; record with --profiler sampler (the default)"
        )
        absent.append(f"no flame chart: no stack samples: {why}")

    try:
        series = power_series(run.telemetry) if not run.telemetry.empty else {}
    except (KeyError, TypeError, ValueError) as exc:  # a telemetry table without its columns
        series = {}
        notes.append(f"energy of a selection left out: the power rows are unreadable ({type(exc).__name__}: {exc})")
    data = {
        "t_end_s": t_end,
        "phases": phase_data,
        "stacks": stack_payload,
        "power": power_payload(series),
    }
    figure = assemble(lanes, t_end, phase_data["top"]) if lanes else None
    if figure is not None:
        flame_index = next((i for i, tr in enumerate(figure["data"]) if tr.get("meta") == "flame"), None)
        data["flame_trace"] = flame_index
    # Epoch boundaries as thin lines through every lane.
    if figure is not None and phase_data["top"]:
        figure["layout"]["shapes"] = [
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
            for kind, _, s, _ in phase_data["top"]
            if kind == "epoch"
        ][:200]
    return Timeline(figure or {}, data, absent, notes)
