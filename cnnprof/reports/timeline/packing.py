"""Numbers for the page: rounding to JSON, base64 packing, and the downsamplers that keep what a
lane needs to look right (min/max per time slice, the longest item per slice, coverage curves)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import numpy as np

_DTYPES = {"u1": "<u1", "u2": "<u2", "u4": "<u4", "i4": "<i4", "f4": "<f4", "f8": "<f8"}


def seconds(ns: np.ndarray | Iterable[float], digits: int = 4) -> list[float]:
    return np.round(np.asarray(ns, dtype=np.float64) / 1e9, digits).tolist()


def values(v: np.ndarray, digits: int = 3) -> list[float | None]:
    v = np.asarray(v, dtype=np.float64)
    out = np.round(v, digits).tolist()
    if np.isnan(v).any():
        out = [None if x != x else x for x in out]
    return out


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


def index_kind(n: int) -> str:
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


def thin_longest(start: np.ndarray, dur: np.ndarray, max_n: int, t_end: float) -> np.ndarray:
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
