"""`lazy-graph` (MLX): few evaluations, each computing a graph built over many steps.

MLX computes nothing until an array is evaluated. A loop that evaluates once per epoch (or never,
until the end) builds one graph over many steps: each step returns at once (graph building), then
one eval computes them all, holding every intermediate in memory meanwhile. An `mx.async_eval`
per step (recorded by the step hooks) is an evaluation too: the graph stays one step long though
the loop waits only once an epoch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..findings import Finding
from .context import RunView
from .sites import sites_from_spans

# Fewer than one eval per four training steps: the graph spans several steps.
LAZY_EVALS_PER_STEP = 0.25
LAZY_MIN_STEPS = 4
# The longest eval takes at least this many median steps: it computes the work of several steps
# (an eval per step takes about one step; a deferred one, as many steps as it holds).
LAZY_EVAL_STEPS = 4.0
# ... and at least this long, so that microsecond noise on a trivial graph is not a finding.
LAZY_EVAL_MIN_S = 0.01


def rule_lazy_graph(ctx: RunView) -> list[Finding]:
    if ctx.framework != "mlx" and not ctx.spans["name"].eq("mx.eval").any():
        return []
    every = pd.concat([ctx.syncs, ctx.cpu_evals])
    evals = every[every["name"].str.contains("eval", na=False)]
    async_evals = ctx.hook_spans("async_eval")
    if len(ctx.steps):
        evals = evals[evals["end_ns"] > ctx.steps[0, 0]]
        async_evals = async_evals[async_evals["end_ns"] > ctx.steps[0, 0]]
    if evals.empty:
        return []
    n_steps = len(ctx.steps)
    step_s = ctx.step_median_s or 0.0
    longest = float(evals["dur_s"].max())
    lazy_cfg = ctx.config.get("sync") == "lazy"
    few = n_steps >= LAZY_MIN_STEPS and len(evals) + len(async_evals) <= LAZY_EVALS_PER_STEP * n_steps
    long_enough = longest >= LAZY_EVAL_MIN_S and longest >= LAZY_EVAL_STEPS * step_s
    if not long_enough or not (lazy_cfg or few):
        return []
    evidence = [
        f"{len(evals):,} evals for {n_steps:,} training steps; longest {longest:.2f} s "
        f"({longest / step_s:,.0f}x the median step of {step_s * 1e3:.2f} ms)"
        if step_s
        else f"{len(evals):,} evals for {n_steps:,} training steps; longest {longest:.2f} s",
        f"median eval {float(evals['dur_s'].median()):.3f} s, total {float(evals['dur_s'].sum()):.2f} s",
    ]
    if lazy_cfg:
        evidence.append("config.sync is 'lazy': the loop evaluates once per epoch")
    longest_at = evals.sort_values("dur_s").iloc[-1]
    steps_before = int(np.sum(ctx.steps[:, 1] <= longest_at["start_ns"])) if n_steps else 0
    if steps_before:
        evidence.append(f"the longest eval starts after {steps_before:,} steps")
    return [
        Finding(
            "lazy-graph",
            "medium",
            f"MLX evaluates a graph built over many steps: {len(evals):,} evals for {n_steps:,} "
            f"steps, the longest {longest:.2f} s",
            evidence,
            "Evaluate once per step (`mx.eval(model.parameters(), optimizer.state, loss)`) so each graph "
            "stays one step long: a graph deferred over many steps holds every intermediate in memory.",
            sites_from_spans(evals),
        )
    ]
