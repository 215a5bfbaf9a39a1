"""Which training steps are warm-up: the rule that separates the steady state from the start.

The first step of any run pays for lazy initialisation (allocator growth, cuDNN autotuning,
kernel compilation: MLX's CUDA backend compiles for ~90 s on a fresh machine, torch.compile
traces), so it is always warm-up once a run has enough steps to tell. After it, warm-up goes on
while steps are still much slower than the steady state, within the first part of the run: a
compile of each new shape at the start (the last, smaller batch of an epoch; the first
validation batch) is warm-up, while a slow step in the middle of training is part of the steady
state (a checkpoint every N steps, a recompile: the `recompiles` and other findings name those).
Warm-up is at most the first half of the steps.
"""

from __future__ import annotations

import numpy as np

# Fewer steps than this: no steady state can be told from warm-up; every step is judged.
MIN_STEPS = 5
# The steady-state reference is the median of the second half of the steps: warm-up, however
# long, cannot move it.
# A step is still warm-up while it takes at least this multiple of that median: twice the steady
# step is far outside the step-to-step noise of a training loop (a few percent to ~30 % on a busy
# machine) and well below a compile or autotune step (10x to 10,000x).
WARMUP_STEP_RATIO = 2.0
# Warm-up has ended at the first run of this many consecutive steady steps (below the ratio): one
# noisy step later on does not stretch the warm-up back over everything before it.
WARMUP_SETTLED_STEPS = 3


def warmup_count(durations: np.ndarray) -> int:
    """How many leading steps are warm-up (0 when there are too few steps to tell)."""
    n = len(durations)
    if n < MIN_STEPS:
        return 0
    steady = float(np.median(durations[n // 2 :]))
    slow = durations >= WARMUP_STEP_RATIO * steady
    for i in range(1, n // 2):
        if not slow[i : i + WARMUP_SETTLED_STEPS].any():
            return i
    return n // 2


# After warm-up, a step at least this multiple of the steady median is a one-off (a compile of a
# new shape: MLX compiles its kernels inside the eval of the first batch of each new size, ~10 s
# on a fresh machine; an autotune; a checkpoint). Such steps are left out of the steady state and
# reported by `warmup`, as long as they are rare: when many steps are that slow, they are the
# steady state.
OUTLIER_STEP_RATIO = 10.0
OUTLIER_MAX_SHARE = 0.05


def outlier_mask(durations: np.ndarray, warmup: int) -> np.ndarray:
    """Steps after warm-up that are one-off outliers (a boolean mask over all steps)."""
    mask = np.zeros(len(durations), dtype=bool)
    rest = durations[warmup:]
    if len(rest) < MIN_STEPS:
        return mask
    slow = rest >= OUTLIER_STEP_RATIO * float(np.median(rest))
    if slow.sum() <= OUTLIER_MAX_SHARE * len(rest):
        mask[warmup:] = slow
    return mask
