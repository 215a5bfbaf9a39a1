"""`rank-imbalance`: one rank works longer per step than the others, who wait for it in collectives.

Synchronised ranks have equal step times (each waits for the last one at every collective), so the
rule compares the work per steady-state step: the step less its time in collectives and accelerator
syncs (job_context.py; on NCCL the wait is in the next device sync) and less the wait inside DDP's
backward pass (`ddp_waits`). Work on the GPU alone is not seen this way (every host waits in its
sync, the slow rank's for its own GPU, the others' for NCCL): that would need GPU-side timing.
The rule compares the slowest rank's work against the median of the other ranks'. It fires when the
difference is at least `MIN_SHARE` of the step (and at least `MIN_GAP_S`, so that sub-millisecond steps do not fire on
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


def _waits(view: RankView, in_backward: float) -> str:
    sites = view.comm_by_site()[:2]
    where = ", ".join(f"{name} {_ms(sec)} ({caller.rsplit('/', 1)[-1]})" for name, caller, sec in sites)
    text = f"rank {view.rank} waits {_ms(view.median_comm_s)} per step in collectives" + (f": {where}" if where else "")
    if in_backward >= MIN_GAP_S:
        text += f", and {_ms(in_backward)} inside its backward pass (DDP's gradient all-reduce)"
    return text


def ddp_waits(views: list[RankView]) -> dict[int, float]:
    """Seconds per step each rank waits inside its backward pass: DDP's C++ all-reduce holds a fast
    rank's backward until the slowest rank's gradients arrive, so the backward passes end together and
    the extra over the shortest one (which is the backward's own work on every rank) is waiting.
    Zero for all ranks when a rank has no backward spans (no step hooks, or no autograd)."""
    backward = {v.rank: v.median_backward_s() for v in views}
    if any(b is None for b in backward.values()):
        return {v.rank: 0.0 for v in views}
    shortest = min(b for b in backward.values() if b is not None)
    return {r: (b or 0.0) - shortest for r, b in backward.items()}


def slow_rank(ctx: JobContext) -> tuple[RankView, list[RankView], dict[int, float]] | None:
    """(the slow rank, the others, each rank's work per step) when the rule's thresholds hold. Work is
    the step less its collectives and less its wait inside DDP's backward (`ddp_waits`)."""
    views = ctx.with_steps
    if len(views) < 2:
        return None
    waits = ddp_waits(views)
    work = {v.rank: v.median_busy_s - waits[v.rank] for v in views}
    slow = max(views, key=lambda v: work[v.rank])
    others = [v for v in views if v is not slow]
    ref = statistics.median(work[v.rank] for v in others)
    step = slow.median_step_s
    gap = work[slow.rank] - ref
    if step <= 0 or gap < MIN_GAP_S or gap / step < MIN_SHARE:
        return None
    return slow, others, work


def rule_rank_imbalance(ctx: JobContext) -> list[Finding]:
    found = slow_rank(ctx)
    if found is None:
        return []
    slow, others, work = found
    views = [slow, *others]
    ref = statistics.median(work[v.rank] for v in others)
    step = slow.median_step_s
    gap = work[slow.rank] - ref
    share = gap / step
    lines = slow.hot_lines()
    waits = ddp_waits(views)
    evidence = [
        f"rank {slow.rank} works {_ms(work[slow.rank])} per steady-state step outside collectives and syncs, the other "
        f"ranks {_ms(ref)} (median): {_ms(gap)} more, {share:.0%} of its {_ms(step)} step",
        *(_waits(v, waits[v.rank]) for v in sorted(others, key=lambda v: v.rank)),
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
    claim = f"Rank {slow.rank} is the slow rank: it works {_ms(gap)} more per step than the others, who wait for it"
    fix = (
        f"Find what only rank {slow.rank} does, or does slower (its hottest lines below): rank-specific work "
        "inline in the step (logging, evaluation, checkpointing), uneven data shards or sequence lengths, a "
        "slower or busier device. Move it off the step, spread it over the ranks, or balance the shards."
    )
    return [Finding("rank-imbalance", "high" if share >= HIGH_SHARE else "medium", claim, evidence, fix, lines)]
