"""Energy (J) from the power rows of `telemetry.parquet`, over any time window.

Every metric whose name ends in `power_w` is a power series, keyed `<source>.<metric>`
(`nvml.power_w`, `nvml.gpu1.power_w`, `powermetrics.gpu_power_w`, `rapl.package-0.power_w`). Two
kinds, told apart by the data itself:

- Window averages (powermetrics, rapl): the source also writes `window_ms` rows at the same
  times; a row's value is the mean power over (t - window, t]. Energy is the sum of value x the
  part of each window inside the asked range (step integration). A row without a `window_ms` row
  at its time takes the gap since the previous row; the first such row is left out.
- Instantaneous samples (nvml): trapezoids between samples, linearly interpolated at the range's
  ends. Nothing is extrapolated: outside the first..last sample the energy is not counted.

`power_avg_w` (NVML's 1 s average) does not end in `power_w` and is left out: it duplicates
`power_w` smoothed. `combined_power_w` (powermetrics' CPU + GPU + ANE) is kept as the package
total; do not add it to its parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

POWER_SUFFIX = "power_w"
WINDOW_METRIC = "window_ms"


@dataclass(frozen=True)
class PowerSeries:
    t_ns: np.ndarray  # int64, increasing
    watts: np.ndarray  # float64
    window_ns: np.ndarray | None  # for window averages: each value covers (t - window, t]


def power_series(telemetry: pd.DataFrame) -> dict[str, PowerSeries]:
    """Every power metric of a telemetry table (columns t_ns, source, metric, value)."""
    out: dict[str, PowerSeries] = {}
    if telemetry.empty:
        return out
    rows = telemetry.dropna(subset=["value"])
    for source, group in rows.groupby("source", sort=True):
        windows = group[group["metric"] == WINDOW_METRIC].groupby("t_ns")["value"].last() * 1e6
        power = group[group["metric"].str.endswith(POWER_SUFFIX)]
        for metric, series in power.groupby("metric", sort=True):
            # Two readings at one instant (an NVML buffered sample and a poll): one point, their mean.
            by_time = series.groupby("t_ns")["value"].mean().sort_index()
            t = by_time.index.to_numpy(dtype=np.int64)
            watts = by_time.to_numpy(dtype=np.float64)
            window: np.ndarray | None = None
            if not windows.empty:
                gaps = np.diff(t, prepend=np.nan).astype(np.float64)
                window = windows.reindex(by_time.index).to_numpy(dtype=np.float64)
                window = np.where(np.isnan(window), gaps, window)
                keep = ~np.isnan(window)
                t, watts, window = t[keep], watts[keep], window[keep]
            out[f"{source}.{metric}"] = PowerSeries(t, watts, window)
    return out


def cumulative_energy(s: PowerSeries, x: np.ndarray) -> np.ndarray:
    """Joules of a power series from its start up to each x: the module's one integration (the
    energy of a window is the difference of two of these; the report's page reads them too)."""
    t = s.t_ns.astype(np.float64)
    w = s.watts
    if s.window_ns is not None:
        lo = t - s.window_ns
        per = w * np.maximum(t - lo, 0)
        cum = np.r_[0.0, np.cumsum(per)]
        # Rows are sorted and windows do not overlap: rows ending before x count whole, the row
        # whose window holds x counts in part.
        j = np.searchsorted(t, x, side="left")  # first row ending at or after x
        jj = np.minimum(j, len(t) - 1)
        part = np.where(j < len(t), w[jj] * np.clip(x - lo[jj], 0, None), 0.0)
        part = np.minimum(part, np.where(j < len(t), per[jj], 0.0))
        return (cum[j] + part) / 1e9
    seg = (w[1:] + w[:-1]) / 2 * np.diff(t)
    cum = np.r_[0.0, np.cumsum(seg)]
    xc = np.clip(x, t[0], t[-1])
    i = np.clip(np.searchsorted(t, xc, side="right") - 1, 0, len(t) - 1)
    wx = np.interp(xc, t, w)
    return (cum[i] + (w[i] + wx) / 2 * (xc - t[i])) / 1e9


def series_energy(series: PowerSeries, start_ns: int, end_ns: int) -> float:
    """Joules of one power series between start_ns and end_ns (same clock as its t_ns)."""
    if end_ns <= start_ns or series.t_ns.size == 0:
        return 0.0
    cum = cumulative_energy(series, np.array([start_ns, end_ns], dtype=np.float64))
    return float(cum[1] - cum[0])


def energy_by_source(telemetry: pd.DataFrame, start_ns: int, end_ns: int) -> dict[str, float]:
    """Joules per power series over [start_ns, end_ns] (times relative to the run's t0, as in
    telemetry.parquet and spans.parquet). For many windows over one run (per epoch), build
    `power_series` once and call `series_energy` per window instead."""
    return {key: series_energy(s, start_ns, end_ns) for key, s in power_series(telemetry).items()}
