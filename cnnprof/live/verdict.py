"""The live verdict: what the steps seen so far point to, by the diagnosis's own thresholds.

It is a first reading, not the diagnosis (which runs at the end, on the steady-state steps, with
the stack samples): it judges the last steps' time split and the GPU busy share only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .state import LiveState

# The diagnosis's thresholds (reports/diagnosis), repeated so that the training process need not
# import pandas for them; tests/test_live_state.py checks that they agree.
SYNC_BOUND_SHARE = 0.20
INPUT_BOUND_SHARE = 0.25
DEVICE_IDLE_PCT = 70.0
SYNC_DEVICE_BUSY_PCT = 60.0  # a device this busy through the syncs did real work: not the syncs' fault
DEVICE_WAIT_SHARE = 0.50  # without GPU telemetry: waiting this much on the device means it sets the pace

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
    """The diagnosis's verdict order (reports/diagnosis/verdict.py) on what the panel has: input
    or syncs where their share passes, else on an accelerator the device's busy share (or, without
    telemetry, how long the host waits on it), else compute-bound on the CPU."""
    steps = list(state.recent_steps)
    total = sum(s.seconds for s in steps)
    if not steps or total <= 0:
        return LiveVerdict("", f"no training step yet ({state.elapsed_s:.0f} s of setup so far)")
    sync = sum(s.split["sync"] for s in steps) / total
    data = sum(s.split["data"] for s in steps) / total
    busy = gpu_busy_pct(state)
    accelerator = busy is not None or state.syncs > 0  # CPU reads are no syncs (state.py)
    last = f"the last {len(steps)} steps"
    sync_blames = busy is None or busy < SYNC_DEVICE_BUSY_PCT
    sync_bound = accelerator and sync >= SYNC_BOUND_SHARE and sync_blames
    if data >= INPUT_BOUND_SHARE and (not sync_bound or data >= sync):
        return LiveVerdict("input-bound", f"fetching batches takes {100 * data:.0f} % of {last}")
    if sync_bound:
        return LiveVerdict("sync-bound", f"waiting on device syncs takes {100 * sync:.0f} % of {last}")
    if sum(s.split["other"] for s in steps) / total > 1 - KNOWN_MIN_SHARE and busy is None:
        return LiveVerdict("", "steps seen, but no data / forward / backward / optimizer spans inside them yet")
    if not accelerator:
        return LiveVerdict("compute-bound", f"the CPU's own computation (data {100 * data:.0f} % of {last})")
    if busy is not None:
        if busy >= DEVICE_IDLE_PCT:
            return LiveVerdict("compute-bound", f"the GPU is busy {busy:.0f} %")
        return LiveVerdict("launch-bound", f"the GPU is busy only {busy:.0f} %: it waits for the host")
    if sync >= DEVICE_WAIT_SHARE:
        return LiveVerdict("compute-bound", f"the host waits on the device {100 * sync:.0f} % of {last}")
    return LiveVerdict("launch-bound", "the host's own work sets the pace (no GPU telemetry)")
