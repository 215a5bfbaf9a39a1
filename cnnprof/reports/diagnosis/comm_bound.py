"""`comm-bound`: collectives take a large share of the steady-state step, even on the rank that
waits least for the others.

Time in collectives is partly waiting for a slower rank (that is `rank-imbalance`); the rank with
the least of it (the last to arrive) shows what communication itself costs. The rule fires when
that rank spends at least `MIN_SHARE` of its step in collectives. Overlap: a synchronous collective
blocks the host (nothing else runs on it meanwhile); an asynchronous one (`async_op=True`) runs
while the host goes on until `Work.wait`, so its launch-to-wait time is overlapped. DDP's gradient
buckets are not seen from Python (profiler/distributed.py): their time is inside the backward pass,
so on a DDP job this rule sees only the collectives the script calls itself.
"""

from __future__ import annotations

from ..findings import CallSite, Finding
from .job_context import COLLECTIVE, WAIT, JobContext, RankView, span_attrs

MIN_SHARE = 0.3
HIGH_SHARE = 0.5


def _overlap(view: RankView) -> tuple[float, float]:
    """(seconds of async collectives in flight before their wait, seconds blocking), per step."""
    comm = view.comm
    steps = view.steps
    lo, hi = steps[0][0], steps[-1][1]
    comm = comm[(comm["start_ns"] >= lo) & (comm["end_ns"] <= hi)]
    blocking = 0
    overlapped = 0
    waits = comm[(comm["kind"] == "sync") & (comm["name"] == WAIT)]["start_ns"].sort_values().to_numpy()
    for row in comm[comm["kind"] == COLLECTIVE].itertuples(index=False):
        if span_attrs(row.attrs).get("async_op"):
            later = waits[waits >= row.end_ns]
            if len(later):
                overlapped += int(later[0]) - row.end_ns
        blocking += row.end_ns - row.start_ns  # the launch of an async one, all of a sync one
    blocking += int(comm[comm["kind"] == "sync"]["dur_ns"].sum())
    return overlapped / 1e9 / len(steps), blocking / 1e9 / len(steps)


def rule_comm_bound(ctx: JobContext) -> list[Finding]:
    views = [v for v in ctx.with_steps if not v.comm.empty]
    if not views:
        return []
    least = min(views, key=lambda v: v.median_comm_s / max(v.median_step_s, 1e-12))
    step = least.median_step_s
    if step <= 0:
        return []
    share = least.median_comm_s / step
    if share < MIN_SHARE:
        return []
    overlapped, blocking = _overlap(least)
    sites = least.comm_by_site()
    evidence = [
        f"rank {least.rank} (the one that waits least) spends {least.median_comm_s * 1e3:,.1f} ms of its "
        f"{step * 1e3:,.1f} ms steady-state step in collectives ({share:.0%})",
        f"blocking the host: {blocking * 1e3:,.1f} ms per step; asynchronous work overlapping compute: "
        f"{overlapped * 1e3:,.1f} ms per step",
        f"{ctx.bytes_per_step(least) / 1e6:,.2f} MB sent per step by rank {least.rank}",
        *(f"{name} at {caller}: {sec * 1e3:,.1f} ms per step" for name, caller, sec in sites[:3]),
    ]
    call_sites = []
    for name, caller, sec in sites[:5]:
        file, _, line = caller.rpartition(":")
        if file and line.isdigit():
            count = int(((least.comm["name"] == name) & (least.comm["caller"] == caller)).sum())
            call_sites.append(CallSite(file, int(line), count, sec * len(least.steps)))
    claim = f"Communication takes {share:.0%} of the step, even on the rank that waits least for the others"
    fix = (
        "Overlap it with compute (async_op=True and wait just before the result is needed; DDP's buckets "
        "overlap the backward pass by themselves), send less or less often (gradient accumulation with "
        "no_sync(), fp16/bf16 compression hooks, fewer metric all-reduces per step), or use a faster "
        "interconnect / backend (NCCL on GPUs)."
    )
    return [Finding("comm-bound", "high" if share >= HIGH_SHARE else "medium", claim, evidence, fix, call_sites)]
