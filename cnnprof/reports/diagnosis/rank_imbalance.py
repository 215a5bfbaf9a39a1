"""`rank-imbalance`: one rank works longer per step than the others, who wait for it in collectives.

Synchronised ranks have equal step times (each waits for the last one at every collective), so the
rule compares the work per steady-state step, the step less its time in collectives (job_context.py):
the slowest rank's against the median of the other ranks'. It fires when the difference is at least
`MIN_SHARE` of the step (and at least `MIN_GAP_S`, so that sub-millisecond steps do not fire on
noise), names the slow rank's hottest user lines (its stack samples outside collectives) and how long
each other rank waits, per step, in which collective and where.
"""

from __future__ import annotations

import statistics

from ..findings import Finding
from .job_context import JobContext, RankView

MIN_SHARE = 0.2
HIGH_SHARE = 0.5
MIN_GAP_S = 0.002


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def _waits(view: RankView) -> str:
    sites = view.comm_by_site()[:2]
    where = ", ".join(f"{name} {_ms(sec)} ({caller.rsplit('/', 1)[-1]})" for name, caller, sec in sites)
    return f"rank {view.rank} waits {_ms(view.median_comm_s)} per step in collectives" + (f": {where}" if where else "")


def slow_rank(ctx: JobContext) -> tuple[RankView, list[RankView], float] | None:
    """(the slow rank, the others, the others' median work per step) when the rule's thresholds hold."""
    views = ctx.with_steps
    if len(views) < 2:
        return None
    slow = max(views, key=lambda v: v.median_busy_s)
    others = [v for v in views if v is not slow]
    ref = statistics.median(v.median_busy_s for v in others)
    step = slow.median_step_s
    gap = slow.median_busy_s - ref
    if step <= 0 or gap < MIN_GAP_S or gap / step < MIN_SHARE:
        return None
    return slow, others, ref


def rule_rank_imbalance(ctx: JobContext) -> list[Finding]:
    found = slow_rank(ctx)
    if found is None:
        return []
    slow, others, ref = found
    views = [slow, *others]
    step = slow.median_step_s
    gap = slow.median_busy_s - ref
    share = gap / step
    lines = slow.hot_lines()
    evidence = [
        f"rank {slow.rank} works {_ms(slow.median_busy_s)} per steady-state step outside collectives, the other "
        f"ranks {_ms(ref)} (median): {_ms(gap)} more, {share:.0%} of its {_ms(step)} step",
        *(_waits(v) for v in sorted(others, key=lambda v: v.rank)),
        "step time per rank: "
        + ", ".join(f"{v.rank}: {_ms(v.median_step_s)}" for v in sorted(views, key=lambda v: v.rank)),
        f"{len(slow.steps)} steady-state steps of rank {slow.rank}, from {slow.step_source}",
    ]
    backward = {v.rank: v.median_backward_s() for v in views}
    if all(b is not None for b in backward.values()):
        evidence.append(
            "backward pass per rank (DDP's gradient all-reduce waits inside it, unseen from Python): "
            + ", ".join(f"{r}: {_ms(b)}" for r, b in sorted(backward.items()))  # type: ignore[arg-type]
        )
    if lines:
        top = lines[0]
        evidence.append(
            f"rank {slow.rank}'s hottest line: {top.file}:{top.line} ({top.seconds:,.2f} s in {top.count} samples)"
        )
    else:
        evidence.append(f"rank {slow.rank} has no stack samples in its steps (record with --profiler sampler)")
    claim = (
        f"Rank {slow.rank} is the slow rank: it works {_ms(gap)} more per step than the others, "
        f"who wait for it in collectives"
    )
    fix = (
        f"Find what only rank {slow.rank} does, or does slower (its hottest lines below): rank-specific work "
        "inline in the step (logging, evaluation, checkpointing), uneven data shards or sequence lengths, a "
        "slower or busier device. Move it off the step, spread it over the ranks, or balance the shards."
    )
    return [Finding("rank-imbalance", "high" if share >= HIGH_SHARE else "medium", claim, evidence, fix, lines)]
