"""Rule `gpu-clock-sources`: where macmon and powermetrics both sampled the GPU clock
(`--telemetry macmon,powermetrics`), say when they disagree.

Both read Apple's counters, but not the same way: macmon derives the clock from IOReport's
residency per frequency state, powermetrics prints its own figure, and on an M5 Max a user saw
powermetrics keep reporting 1620 MHz while IOReport showed 540-1620 MHz (feedback-assistant
reports #830). A report that shows one of them should say that the other saw something else.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..findings import Finding
from .context import RunView

SOURCES = ("macmon", "powermetrics")
METRIC = "gpu_freq_mhz"
# Pairs of readings closer in time than this many of the slower source's intervals are compared.
PAIR_TOLERANCE_INTERVALS = 1.5
MIN_PAIRS = 3
# The median of |a - b| / max(a, b) over the pairs at or above this: they disagree.
DISAGREE_SHARE = 0.15
# One source flat (range under 1 MHz) while the other moves by a fifth of its maximum or more.
FLAT_MHZ = 1.0
MOVES_SHARE = 0.20


def _series(tel: pd.DataFrame, source: str) -> pd.DataFrame:
    rows = tel[(tel["source"] == source) & (tel["metric"] == METRIC)]
    rows = rows[rows["value"] > 0]  # an idle GPU's 0 MHz says nothing about the clock
    return rows[["t_ns", "value"]].sort_values("t_ns").reset_index(drop=True)


def _interval_ns(series: pd.DataFrame) -> float:
    gaps = np.diff(series["t_ns"].to_numpy(dtype=np.int64))
    return float(np.median(gaps)) if len(gaps) else 0.0


def _range_text(values: np.ndarray) -> str:
    return f"median {np.median(values):.0f} MHz, range {values.min():.0f}-{values.max():.0f}"


def rule_gpu_clock_sources(ctx: RunView) -> list[Finding]:
    tel = ctx.telemetry
    if tel.empty or not {"source", "metric"} <= set(tel.columns):
        return []
    a, b = (_series(tel, source) for source in SOURCES)
    if len(a) < MIN_PAIRS or len(b) < MIN_PAIRS:
        return []
    tolerance = int(PAIR_TOLERANCE_INTERVALS * max(_interval_ns(a), _interval_ns(b)))
    pairs = pd.merge_asof(
        a.rename(columns={"value": SOURCES[0]}),
        b.rename(columns={"value": SOURCES[1]}),
        on="t_ns",
        direction="nearest",
        tolerance=max(tolerance, 1),
    ).dropna()
    if len(pairs) < MIN_PAIRS:
        return []
    va, vb = pairs[SOURCES[0]].to_numpy(float), pairs[SOURCES[1]].to_numpy(float)
    share = float(np.median(np.abs(va - vb) / np.maximum(va, vb)))
    by_source = dict(zip(SOURCES, (va, vb), strict=True))
    flat = [
        (name, other)
        for name, other in (SOURCES, SOURCES[::-1])
        if np.ptp(by_source[name]) < FLAT_MHZ and np.ptp(by_source[other]) >= MOVES_SHARE * by_source[other].max()
    ]
    if share < DISAGREE_SHARE and not flat:
        return []
    evidence = [
        f"{len(pairs):,} pairs of readings at most {tolerance / 1e6:.0f} ms apart",
        f"macmon: {_range_text(va)}",
        f"powermetrics: {_range_text(vb)}",
        f"median difference {share:.0%} of the higher reading",
    ]
    if flat:
        name, other = flat[0]
        claim = f"{name} reports a flat GPU clock while {other} sees it change: the two sources disagree"
    else:
        claim = f"macmon and powermetrics disagree on the GPU clock (median difference {share:.0%})"
    return [
        Finding(
            "gpu-clock-sources",
            "info",
            claim,
            evidence,
            "Read GPU clock figures from one source and say which; macmon's comes from IOReport's "
            "residency per frequency state. Compare runs only on the same source.",
        )
    ]
