"""GPU utilisation from telemetry, its mean over a set of intervals, and how many readings the
intervals hold whole."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...traces.steps import merge_intervals

# How far back one reading looks. NVML's utilisation is the busy share of its last sample period
# (1/6 s to 1 s by product, NVML's documentation; 200 ms measured on the H100,
# reference/GPU_MACHINE.md), whatever the polling interval; other sources report over the
# interval between their readings.
NVML_LOOKBACK_NS = 200_000_000
# Fewer readings than this wholly inside the steady state: its busy share is mostly readings that
# straddle its edges (the validation, an epoch's end), so a figure to read with care.
FEW_READINGS = 10


@dataclass
class Series:
    metric: str
    source: str
    t: np.ndarray  # ns, sorted
    v: np.ndarray
    period_ns: int


def gpu_util(tel: pd.DataFrame) -> Series | None:
    if tel.empty or "metric" not in tel:
        return None
    for metric in ("gpu_util_pct", "gpu_active_pct"):
        rows = tel[tel["metric"] == metric]
        if rows.empty:
            continue
        # Several GPUs or sources at one instant: the busiest one is the one the run trains on.
        by_t = rows.groupby("t_ns")["value"].max().sort_index()
        t = by_t.index.to_numpy(dtype=np.int64)
        v = by_t.to_numpy(dtype=float)
        period = int(np.median(np.diff(t))) if len(t) > 1 else 1_000_000_000
        period = min(max(period, 1_000_000), 1_000_000_000)
        sources = ", ".join(sorted(str(s) for s in rows["source"].unique()))
        return Series(metric, sources, t, v, period)
    return None


def util_over(series: Series, starts: np.ndarray, ends: np.ndarray) -> float | None:
    """Duration-weighted mean utilisation over intervals.

    A utilisation reading at time t describes the period (t - period, t], so the readings that
    overlap an interval [s, e] are those taken in (s, e + period); an interval that holds none
    (shorter than the period, between two readings) takes the first reading after it.
    """
    if len(starts) == 0 or len(series.t) == 0:
        return None
    t, v = series.t, series.v
    csum = np.concatenate([[0.0], np.cumsum(v)])
    i0 = np.searchsorted(t, starts, side="right")
    i1 = np.searchsorted(t, ends + series.period_ns, side="left")
    n = i1 - i0
    means = np.full(len(starts), np.nan)
    has = n > 0
    means[has] = (csum[i1[has]] - csum[i0[has]]) / n[has]
    after = ~has & (i0 < len(t))
    means[after] = v[i0[after]]
    weights = (ends - starts).astype(float)
    ok = ~np.isnan(means)
    if not ok.any():
        return None
    w = weights[ok]
    if w.sum() <= 0:
        return float(means[ok].mean())
    return float((means[ok] * w).sum() / w.sum())


def lookback_ns(series: Series) -> int:
    return max(series.period_ns, NVML_LOOKBACK_NS if "nvml" in series.source else 0)


def readings_inside(series: Series, window: np.ndarray, gap_ns: int = 5_000_000) -> int:
    """How many readings look back over time wholly inside the window's intervals, once the
    intervals closer than `gap_ns` are joined (a loop's steps tile its epoch)."""
    if not len(window) or not len(series.t):
        return 0
    joined = merge_intervals(window, gap_ns)
    back = lookback_ns(series)
    return sum(int(((series.t - back >= s) & (series.t <= e)).sum()) for s, e in joined)
