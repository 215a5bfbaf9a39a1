"""Rule `cpu-fallback`: ops that the MPS backend lacks ran on the CPU (spans of kind `fallback`,
profiler/fallback.py): which ops, how often, from which lines, and the time around them, read
from the stack samples taken at those lines (the op on the CPU plus the copies each way, and
whatever else those lines do).
"""

from __future__ import annotations

import numpy as np

from ..findings import CallSite, Finding
from .context import RunView
from .sites import split_caller

KIND = "fallback"
# The sampled time at the fallback lines as a share of the observed time: medium / high.
MEDIUM_SHARE = 0.05
HIGH_SHARE = 0.20
# Without samples to weigh them, this many fallback calls is medium: once per step, at least.
MEDIUM_CALLS = 100
SHOWN_OPS = 5


def _seconds_at(ctx: RunView, sites: set[tuple[str, int]]) -> float | None:
    """Sampled seconds whose stack passes through one of `sites`; None without samples."""
    samples = ctx.samples
    if samples.empty:
        return None
    key = "cpu-fallback:" + ",".join(f"{f}:{n}" for f, n in sorted(sites))
    flags = np.array(samples.per_stack(key, lambda frames: any((f.file, f.line) in sites for f in frames)), dtype=bool)
    mask = flags[samples.sid] & samples.in_window(ctx.window)
    return float(samples.dt[mask].sum()) / 1e9


def rule_cpu_fallback(ctx: RunView) -> list[Finding]:
    spans = ctx.spans
    calls = spans[spans["kind"] == KIND]
    if calls.empty:
        return []
    by_op = calls.groupby("name", sort=False)
    ops = sorted(((str(op), len(g), g) for op, g in by_op), key=lambda x: -x[1])
    sites: dict[tuple[str, int], int] = {}
    for caller in calls["caller"].tolist():
        if (site := split_caller(caller)) is not None:
            sites[site] = sites.get(site, 0) + 1
    seconds = _seconds_at(ctx, set(sites))
    share = seconds / ctx.window_s if seconds is not None and ctx.window_s > 0 else None
    if share is not None:
        severity = "high" if share >= HIGH_SHARE else "medium" if share >= MEDIUM_SHARE else "low"
    else:
        severity = "medium" if len(calls) >= MEDIUM_CALLS else "low"
    evidence = []
    for op, n, group in ops[:SHOWN_OPS]:
        t = group["start_ns"].to_numpy(dtype=np.int64) / 1e9
        where = ", ".join(sorted({str(c) for c in group["caller"].tolist() if c})[:3]) or "?"
        evidence.append(f"{op}: {n:,} call{'s' if n != 1 else ''} ({t.min():.2f}-{t.max():.2f} s), from {where}")
    if len(ops) > SHOWN_OPS:
        evidence.append(f"and {len(ops) - SHOWN_OPS} more ops")
    if seconds is not None:
        evidence.append(
            f"{seconds:.2f} s of stack samples at these lines ({share:.1%} of {ctx.window_text}): "
            "the op on the CPU, the copies to and from the GPU, and the rest of each line"
        )
    else:
        evidence.append("no stack samples in this run to weigh the time at these lines")
    names = ", ".join(op for op, _, _ in ops[:3])
    call_sites = [CallSite(file, line, n, 0.0) for (file, line), n in sorted(sites.items(), key=lambda kv: -kv[1])]
    return [
        Finding(
            "cpu-fallback",
            severity,
            f"{len(calls):,} op call{'s' if len(calls) != 1 else ''} fell back from MPS to the CPU ({names})",
            evidence,
            "Replace these ops with ones MPS supports, or move their inputs to the CPU once (not per call) and "
            "back after; a newer torch may have the kernel (pytorch/pytorch issue 141287 tracks missing MPS ops).",
            call_sites,
        )
    ]
