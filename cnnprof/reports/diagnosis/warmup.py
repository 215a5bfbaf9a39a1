"""`warmup`: the first steps are much slower than the steady state (compile, autotune, lazy init).

The steady state (steady.py) leaves the warm-up steps out of every other rule; this finding says
what was left out and what it cost.
"""

from __future__ import annotations

import numpy as np

from ..findings import Finding
from .context import RunView

# First step at least 5x the steady-state median, and at least a quarter second more (so a 2 ms
# vs 0.3 ms first step on a tiny model is not a finding).
WARMUP_RATIO = 5.0
WARMUP_MIN_EXCESS_S = 0.25
# First epoch 1.5x the median of the others (needs >= 3 epochs).
WARMUP_EPOCH_RATIO = 1.5
# Warm-up that costs more than a tenth of the training time matters for the figures: medium.
WARMUP_MEDIUM_SHARE = 0.10


def rule_warmup(ctx: RunView) -> list[Finding]:
    evidence: list[str] = []
    excess = 0.0
    claim = None
    if ctx.n_warmup and len(ctx.steady):
        durations = (ctx.steps[:, 1] - ctx.steps[:, 0]) / 1e9
        first, steady = float(durations[0]), float(np.median(durations[ctx.n_warmup :]))
        warm = durations[: ctx.n_warmup]
        step_excess = float(warm.sum()) - steady * len(warm)
        if steady > 0 and first >= WARMUP_RATIO * steady and step_excess >= WARMUP_MIN_EXCESS_S:
            excess = step_excess
            claim = (
                f"The first training step takes {first:.2f} s, {first / steady:,.0f}x the steady-state "
                f"{steady * 1e3:.1f} ms (warm-up)"
            )
            evidence.append(
                f"{ctx.n_warmup:,} warm-up step{'s' if ctx.n_warmup != 1 else ''} ({float(warm.sum()):.2f} s) left "
                f"out of the steady state; median of the other {len(durations) - ctx.n_warmup:,}: "
                f"{steady * 1e3:.2f} ms"
            )
    if len(ctx.outliers) and len(ctx.steady):
        steady = float(np.median(ctx.steady[:, 1] - ctx.steady[:, 0])) / 1e9
        slow = (ctx.outliers[:, 1] - ctx.outliers[:, 0]) / 1e9
        slow_excess = float(slow.sum()) - steady * len(slow)
        if slow_excess >= WARMUP_MIN_EXCESS_S:
            evidence.append(
                f"{len(slow):,} one-off slow step{'s' if len(slow) != 1 else ''} after warm-up left out too "
                f"({float(slow.sum()):.2f} s, the longest {float(slow.max()):.2f} s): a compile of a new shape, "
                "an autotune, a checkpoint"
            )
            excess += slow_excess
            if claim is None:
                claim = (
                    f"{len(slow):,} steps take {float(slow.sum()):.2f} s, far beyond the steady-state "
                    f"{steady * 1e3:.1f} ms"
                )
    epochs = ctx.spans[ctx.spans["kind"] == "epoch"]
    if len(epochs) >= 3:
        dur = epochs.sort_values("start_ns")["dur_s"].to_numpy(float)
        first, steady = float(dur[0]), float(np.median(dur[1:]))
        if steady > 0 and first >= WARMUP_EPOCH_RATIO * steady and first - steady >= WARMUP_MIN_EXCESS_S:
            evidence.append(f"first epoch {first:.2f} s vs median {steady:.2f} s of the other {len(dur) - 1}")
            if claim is None:
                claim = f"The first epoch takes {first:.2f} s, {first / steady:.1f}x the others (warm-up)"
            excess = max(excess, first - steady)
    if claim is None:
        return []
    training_s = float((ctx.steps[:, 1] - ctx.steps[:, 0]).sum()) / 1e9 if len(ctx.steps) else ctx.window_s
    share = excess / max(training_s, 1e-9)
    evidence.append(f"warm-up costs about {excess:.2f} s ({share:.0%} of {training_s:.2f} s of training steps)")
    return [
        Finding(
            "warmup",
            "medium" if share >= WARMUP_MEDIUM_SHARE else "low",
            claim + ": compilation, autotuning, allocator growth, lazy initialisation",
            evidence,
            "Expected once per run: leave the first steps out of timings and comparisons (cnnprof's "
            "findings already do); if slow steps recur, look for recompiles caused by changing shapes.",
        )
    ]
