"""The live verdict: what the steps seen so far point to, by the diagnosis's own thresholds.

It is a first reading, not the diagnosis (which runs at the end, on the steady-state steps, with
the stack samples): it judges the last steps' time split and the GPU busy share only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .state import LiveState

# The diagnosis's thresholds (reports/diagnosis: SYNC_BOUND_SHARE, INPUT_BOUND_SHARE,
# DEVICE_IDLE_PCT), repeated so that the training process need not import pandas for them;
# tests/test_live_state.py checks that they agree.
SYNC_BOUND_SHARE = 0.20
INPUT_BOUND_SHARE = 0.25
DEVICE_IDLE_PCT = 50.0

# Below this share of step time in named parts, the split says too little for a verdict.
KNOWN_MIN_SHARE = 0.05

GPU_BUSY_KEYS = ("nvml.gpu_util_pct", "powermetrics.gpu_active_pct")


@dataclass(frozen=True)
class LiveVerdict:
    label: str  # compute-bound, input-bound, sync-bound, launch-bound; "" before the first steps
    reason: str


def gpu_busy_pct(state: LiveState) -> float | None:
    """Mean GPU busy % over the recent telemetry (every GPU's, where there are several)."""
    values = [
        v
        for key, history in state.history.items()
        if key in GPU_BUSY_KEYS or (key.startswith("nvml.gpu") and key.endswith(".gpu_util_pct"))
        for v in history
    ]
    return sum(values) / len(values) if values else None


def live_verdict(state: LiveState) -> LiveVerdict:
    steps = list(state.recent_steps)
    total = sum(s.seconds for s in steps)
    if not steps or total <= 0:
        return LiveVerdict("", "no steps seen yet")
    sync = sum(s.split["sync"] for s in steps) / total
    data = sum(s.split["data"] for s in steps) / total
    busy = gpu_busy_pct(state)
    over = [
        (share / line, name, share)
        for name, share, line in (("sync-bound", sync, SYNC_BOUND_SHARE), ("input-bound", data, INPUT_BOUND_SHARE))
        if share >= line
    ]
    if over:
        _, name, share = max(over)
        what = "waiting on device syncs" if name == "sync-bound" else "fetching batches"
        return LiveVerdict(name, f"{100 * share:.0f} % of the last {len(steps)} steps' time is {what}")
    if busy is not None and busy < DEVICE_IDLE_PCT:
        return LiveVerdict("launch-bound", f"the GPU is busy {busy:.0f} % of the time: it waits for the host")
    if sum(s.split["other"] for s in steps) / total > 1 - KNOWN_MIN_SHARE:
        return LiveVerdict("", "steps seen, but no data / forward / backward / optimizer spans inside them yet")
    where = f"GPU busy {busy:.0f} %" if busy is not None else "no GPU busy reading"
    return LiveVerdict("compute-bound", f"syncs {100 * sync:.0f} %, data {100 * data:.0f} % of step time; {where}")
