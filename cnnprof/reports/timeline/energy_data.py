"""Power series for the page's energy of a range. Small series go as they are (the page integrates
them as traces/energy.py does); long ones as window averages over POWER_POINTS slices whose
energy is exact (so only a range's two edge slices are approximate)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...traces.energy import PowerSeries, cumulative_energy
from .packing import pack

POWER_POINTS = 6000  # per embedded power series


def power_payload(series: dict[str, PowerSeries]) -> dict[str, Any]:
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
