"""Power for the page's energy of a range, integrated here (traces/energy.py's one integration):
each series as its cumulative joules at its breakpoints, which the page reads at a range's ends.

Window averages (powermetrics, rapl) are exact that way: between a window's start and end the
cumulative energy is a straight line. Instantaneous samples (NVML) are exact at each sample;
inside one sample gap a range's end is read on the chord (off by at most a gap's power change x
its length / 8). A long series goes as POWER_POINTS evenly spaced points of the same curve."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...traces.energy import PowerSeries, cumulative_energy
from .packing import pack

POWER_POINTS = 6000  # per embedded power series


def breakpoints(s: PowerSeries) -> np.ndarray:
    """Where a series' cumulative energy changes slope (ns since t0)."""
    t = s.t_ns.astype(np.float64)
    if s.window_ns is None:
        return t
    return np.unique(np.concatenate((t - s.window_ns, t)))


def power_payload(series: dict[str, PowerSeries]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, s in series.items():
        if len(s.t_ns) == 0:
            continue
        x = breakpoints(s)
        if len(x) > POWER_POINTS:
            x = np.linspace(x[0], x[-1], POWER_POINTS)
        out[key] = {"x": pack(x / 1e3, "f8"), "e": pack(cumulative_energy(s, x), "f8")}
    return out
