"""The telemetry table as series: (source, metric) -> (t_ns, values), sorted by time. The one place
that splits telemetry.parquet's long rows (t_ns, source, metric, value) into per-metric arrays."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .metrics import canonical, lane_of, metric_parts, order

SeriesKey = tuple[str, str]  # (source, metric)


class TelemetrySeries:
    """Every (source, metric) series of a telemetry table, in (source, metric) order, each metric
    under its vocabulary name (traces/metrics.py: an older run's alias is translated)."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.series: dict[SeriesKey, tuple[np.ndarray, np.ndarray]] = {}
        if df.empty or not {"t_ns", "source", "metric", "value"} <= set(df.columns):
            return
        df = df.dropna(subset=["t_ns", "value"])
        for (source, metric), g in df.groupby(["source", "metric"], sort=True):
            t = g["t_ns"].to_numpy(dtype=np.int64)
            v = g["value"].to_numpy(dtype=np.float64)
            if len(t) > 1 and np.any(np.diff(t) < 0):
                order = np.argsort(t, kind="stable")
                t, v = t[order], v[order]
            self.series[(str(source), canonical(str(metric)))] = (t, v)

    def find(self, *bases: str) -> list[SeriesKey]:
        """The series whose metric (less a gpuN. prefix) is one of `bases`, in the order asked."""
        out = []
        for base in bases:
            out += [key for key in self.series if metric_parts(key[1])[1] == base]
        return out

    def in_lane(self, lane: str) -> list[SeriesKey]:
        """The series the vocabulary puts in `lane`, in vocabulary order, then by source."""
        keys = [key for key in self.series if lane_of(key[1]) == lane]
        return sorted(keys, key=lambda k: (order(k[1]), k[0], k[1]))

    def matching(self, pattern: str) -> list[SeriesKey]:
        rx = re.compile(pattern)
        return [key for key in self.series if rx.fullmatch(key[1])]

    def max_t(self) -> int:
        return max((int(t[-1]) for t, _ in self.series.values() if len(t)), default=0)
