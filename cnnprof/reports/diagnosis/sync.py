"""`sync-bound` and `sync-sites`: the host waiting on the accelerator.

`sync-bound`: blocking syncs take a large share of the steady-state step time, split into
*device-bound* (the GPU was busy while the host waited: the sync only shows where the wait for
GPU work lands) and *serialisation* (the GPU idled around the syncs: remove or batch them) by GPU
utilisation telemetry; without it the finding says it can't tell. `sync-sites` (info): frequent
device syncs below that share (a GPU fast enough to keep up hides them; a slower one does not).

Only waits on an accelerator count (RunView.syncs): CPU tensor reads are not recorded, and an
`mx.eval` on the CPU device is the computation itself (the verdict says so). Where a sync was not
hooked, long stack samples whose leaf is a torch C sync method (`Tensor.item`, ...) and that
overlap no hooked span are counted too; that needs C functions as stack leaves, which only
`--profiler pyinstrument` records, and works for torch only (nanobind functions such as `mx.eval`
produce no C-call profiler events).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..findings import Finding
from .context import CPU_DEVICE, Frame, RunView, inside, total_s
from .series import util_over
from .sites import first_user_frame, sites_from_spans
from .sync_cost import evidence_line, traced_sync_cost

# A fifth of the training time blocked in syncs is worth acting on: removing per-batch syncs from
# the seed loop is a one-line change, and below this share the other costs usually dominate.
SYNC_BOUND_SHARE = 0.20
# Half the time or more: the sync wait is *the* bottleneck.
SYNC_HIGH_SHARE = 0.50
# Below SYNC_BOUND_SHARE, this many device syncs in the window (a per-step sync over a few hundred
# steps; the tuned loop's once-per-epoch reads stay far below) are still named, as info: a GPU
# that keeps up hides them (the H100 on the seed loop: 1,060 .item() calls, 0.3 s), a slower one
# does not (the study's mps: 41 s).
SYNC_SITES_MIN_CALLS = 100
# GPU utilisation (NVML: % of time a kernel ran; powermetrics: active residency) at or above
# which the device counts as busy during a sync: the host waited for real work (device-bound).
# NVML's figure is coarse (averaged over 1/6 s to 1 s, longer than most syncs), so in practice it
# reads the GPU's busy share *around* the syncs; the line is set well above half. Checked by hand on
# an H100 with NVML polled at 50 Hz: a loop that only waits on back-to-back matmuls came out
# device-bound; one where ~8 ms of host work and ~8 ms of GPU work take turns (GPU ~50 % busy over
# the run) came out serialisation.
SYNC_DEVICE_BUSY_PCT = 60.0

# Torch C methods that block on the device, as stack-sample leaves (`<built-in>` frames are named
# by their __qualname__: "TensorBase.item" when called unbound, "Tensor.item" / "Parameter.item"
# when called on an instance) -> the sync kind the hooks would have recorded.
_SAMPLE_SYNC_METHODS = {
    "item": "Tensor.item",
    "tolist": "Tensor.tolist",
    "cpu": "Tensor.cpu",
    "numpy": "Tensor.numpy",
}
_SAMPLE_SYNC_FUNCTIONS = {
    "_cuda_synchronize": "torch.cuda.synchronize",
    "_mps_synchronize": "torch.mps.synchronize",
    # never seen as leaves under Python 3.11 (nanobind), kept in case a later Python reports them
    "eval": "mx.eval",
    "array.item": "array.item",
    "array.tolist": "array.tolist",
}


def _sample_sync_kind(frames: list[Frame]) -> str | None:
    if not frames:
        return None
    leaf = frames[-1]
    if leaf.file != "<built-in>":
        return None
    kind = _SAMPLE_SYNC_FUNCTIONS.get(leaf.function)
    if kind:
        return kind
    owner, _, method = leaf.function.rpartition(".")
    if method in _SAMPLE_SYNC_METHODS and ("Tensor" in owner or owner == "Parameter"):
        return _SAMPLE_SYNC_METHODS[method]
    return None


def _sample_syncs(ctx: RunView) -> pd.DataFrame:
    """Syncs seen only in the stack samples (not hooked): a sync-method leaf overlapping no span."""
    samples = ctx.samples
    cols = ["name", "start_ns", "end_ns", "caller", "dur_s", "device"]
    if samples.empty:
        return pd.DataFrame(columns=cols)
    kinds = samples.per_stack("sync_kind", _sample_sync_kind)
    flags = np.array([k is not None for k in kinds], dtype=bool)
    mask = flags[samples.sid]
    if not mask.any():
        return pd.DataFrame(columns=cols)
    starts, ends = samples.t[mask], samples.t[mask] + samples.dt[mask]
    sids = samples.sid[mask]
    hooked = ctx.syncs
    if not hooked.empty:
        order = np.argsort(hooked["start_ns"].to_numpy())
        h_start = hooked["start_ns"].to_numpy()[order]
        h_end_max = np.maximum.accumulate(hooked["end_ns"].to_numpy()[order])
        idx = np.searchsorted(h_start, ends, side="left") - 1
        overlap = (idx >= 0) & (h_end_max[np.clip(idx, 0, None)] > starts)
        starts, ends, sids = starts[~overlap], ends[~overlap], sids[~overlap]
    # The device: the backend's, else the one every hooked sync ran on, else unknown (skipped).
    device = ctx.device
    if device is None:
        seen = set(ctx.syncs["device"]) - {"unknown"}
        device = seen.pop() if len(seen) == 1 else None
    if device is None or device == CPU_DEVICE:  # a CPU tensor's read waits for nothing
        return pd.DataFrame(columns=cols)
    # Per unique stack (not per sample: a long run has a million samples over a few thousand stacks).
    users = samples.per_stack("first_user", first_user_frame)
    callers = np.array([f"{u.file}:{u.line}" if u else None for u in users], dtype=object)
    names = np.array(kinds, dtype=object)
    return pd.DataFrame(
        {
            "name": names[sids],
            "start_ns": starts,
            "end_ns": ends,
            "caller": callers[sids],
            "dur_s": (ends - starts) / 1e9,
            "device": device,
        },
        columns=cols,
    )


def device_syncs(ctx: RunView) -> pd.DataFrame:
    """The accelerator syncs in the window: hooked, plus those seen only in stack samples
    (computed once per run view: the sync rule and the verdict both ask)."""
    return ctx.memo("device_syncs", lambda: _device_syncs(ctx))


def _device_syncs(ctx: RunView) -> pd.DataFrame:
    syncs = ctx.syncs[["name", "start_ns", "end_ns", "caller", "dur_s", "device"]].assign(from_samples=False)
    from_samples = _sample_syncs(ctx).assign(from_samples=True)
    if not from_samples.empty:
        syncs = from_samples if syncs.empty else pd.concat([syncs, from_samples], ignore_index=True)
    if syncs.empty:
        return syncs
    starts = syncs["start_ns"].to_numpy(np.int64)
    return syncs[inside(starts, syncs["end_ns"].to_numpy(np.int64), ctx.window)]


def rule_sync(ctx: RunView) -> list[Finding]:
    if not ctx.uses_gpu:
        return []
    syncs = device_syncs(ctx)
    if syncs.empty:
        return []
    total = float(syncs["dur_s"].sum())
    share = total / ctx.window_s
    if share >= SYNC_BOUND_SHARE:
        return [_sync_bound(ctx, syncs, total, share)]
    if len(syncs) >= SYNC_SITES_MIN_CALLS:
        return [_sync_sites(ctx, syncs)]
    return []


def sync_split(ctx: RunView, syncs: pd.DataFrame) -> tuple[str, str | None]:
    """("device-bound" | "serialisation" | "unknown", the evidence line) for these syncs. Waits
    deferred to after the steps (RunView.deferred) are for work the host queued ahead: most of
    the time in them makes the syncs device-bound whatever the (coarse) telemetry says."""
    deferred = total_s(ctx.deferred)
    if not syncs.empty and deferred >= 0.5 * float(syncs["dur_s"].sum()):
        return "device-bound", (
            f"{deferred:.2f} s of the waits come right after the steps, for GPU work the host queued ahead of it "
            "(it ran ahead of the GPU)"
        )
    series = ctx.gpu
    if series is None or syncs.empty:
        return "unknown", None
    u_sync = util_over(series, syncs["start_ns"].to_numpy(np.int64), syncs["end_ns"].to_numpy(np.int64))
    if u_sync is None:
        return "unknown", None
    u_all = ctx.device_busy_pct
    line = (
        f"mean GPU utilisation during the syncs {u_sync:.0f}% (busy at >= {SYNC_DEVICE_BUSY_PCT:.0f}%)"
        + (f", {u_all:.0f}% over the window" if u_all is not None else "")
        + f" ({series.metric} from {series.source}, {len(series.t):,} readings)"
    )
    return ("device-bound" if u_sync >= SYNC_DEVICE_BUSY_PCT else "serialisation"), line


def sync_cost(ctx: RunView, syncs: pd.DataFrame) -> tuple[float | None, str, str | None]:
    """What removing the syncs would save, % of the steady-state step, as (pct, how it is
    bounded: "about" or "at most ...", the evidence line). With a GPU trace of the steady state:
    the estimate of sync_cost.py. Else the GPU's idle share by telemetry, an upper bound: a sync
    drains the GPU's queue, so the GPU idles from its end until the host has launched the next
    work; without syncs the host runs ahead and that idle time can vanish, but the GPU's busy time
    cannot (and NVML's idle share also counts the GPU's own gaps between kernels). (None, "",
    None) without either."""
    steady = ctx.steady if len(ctx.steady) else ctx.steps
    profiler = ctx.run.meta.get("profiler") or {}
    traced = traced_sync_cost(ctx.gpu_trace, syncs, steady, profiler, total_s(ctx.deferred) * 1e9)
    if traced is not None:
        return 100.0 * traced.share, "about", evidence_line(traced)
    busy = ctx.device_busy_pct
    if busy is None:
        return None, "", None
    cost = max(0.0, 100.0 - busy)
    return (
        cost,
        "at most the GPU's idle time,",
        f"removing them can save at most the GPU's idle time: {cost:.0f}% of the steady-state step",
    )


def by_kind(syncs: pd.DataFrame) -> list[str]:
    lines = []
    grouped = syncs.groupby("name")["dur_s"].agg(["count", "sum"]).sort_values("sum", ascending=False)
    for name, row in grouped.iterrows():
        n, s = int(row["count"]), float(row["sum"])
        lines.append(f"{name}: {n:,} call{'s' if n != 1 else ''}, {s:.2f} s (mean {s / n * 1e3:.2f} ms)")
    return lines


def _sync_bound(ctx: RunView, syncs: pd.DataFrame, total: float, share: float) -> Finding:
    devices = "/".join(sorted(set(syncs["device"])))
    evidence = [
        f"{len(syncs):,} blocking syncs on {devices}: {total:.2f} s of {ctx.window_text} ({share:.0%})",
        *by_kind(syncs),
    ]
    seen = syncs[syncs["from_samples"]]
    if not seen.empty:
        evidence.append(
            f"{seen['dur_s'].sum():.2f} s of these are unhooked syncs seen only in stack samples "
            f"({len(seen):,} samples whose leaf is a sync method)"
        )
    split, line = sync_split(ctx, syncs)
    if line:
        evidence.append(line)
    cost, bound, cost_line = sync_cost(ctx, syncs)
    if cost_line:
        evidence.append(cost_line)
    rule = "sync-bound"
    if split == "device-bound" or ctx.framework == "mlx":
        # Not a sync problem: the wait is the device's work (the verdict says compute-bound). MLX
        # dispatches and computes its graph inside mx.eval: an eval per step is its way of running
        # a step (the H200 runs the study's loop with an eval per batch as fast as with one per
        # epoch, 0.61 vs 0.61 s; docs/BENCHMARKS.md), so its time is the step's work, never a
        # sync to remove (an idle GPU inside it is launch overhead: the verdict says so).
        rule, severity = "sync-sites", "info"
        what = (
            "the GPU was busy while the host waited (device-bound)"
            if split == "device-bound"
            else "MLX dispatches and computes the step's graph inside mx.eval: that is the step's work"
        )
        costs = f"; they cost {bound} {cost:.0f}% of the step" if cost is not None else ""
        claim = (
            f"Blocking syncs take {share:.0%} of the steady-state step time, but {what}: the syncs only show "
            f"where the wait for GPU work lands{costs}"
        )
        fix = (
            "The GPU work itself is the bottleneck, and removing the syncs would mostly move the wait: "
            "make the step cheaper (mixed precision, channels-last, a compiled step) or the model smaller."
        )
    elif split == "serialisation":
        severity = "high" if share >= SYNC_HIGH_SHARE else "medium"
        costs = f"; removing them saves {bound} {cost:.0f}% of the step" if cost is not None else ""
        claim = (
            f"Blocking host-device syncs take {share:.0%} of the steady-state step time and the GPU idles around "
            f"them (serialisation): host and GPU take turns instead of overlapping{costs}"
        )
        fix = (
            "Remove or batch the per-step syncs: accumulate loss and accuracy on the device and read them "
            "once per epoch, and avoid Python branches on tensor values (`if loss < x`)."
        )
    else:
        severity = "high" if share >= SYNC_HIGH_SHARE else "medium"
        claim = (
            f"Blocking host-device syncs take {share:.0%} of the steady-state step time (no GPU utilisation "
            "telemetry, so whether the GPU was busy (device-bound) or idle (serialisation) can't be told)"
        )
        fix = (
            "Read metrics once per epoch instead of per batch (accumulate on the device); if the time "
            "stays, the GPU work itself is the bottleneck. Rerun with GPU telemetry to tell which."
        )
        evidence.append("no GPU utilisation telemetry (gpu_util_pct / gpu_active_pct) in this run")
    evidence.insert(1, f"split: {split}")
    if ctx.framework == "mlx":
        evidence.append("MLX is lazy: an mx.eval's time includes computing the graph it evaluates")
    return Finding(rule, severity, claim, evidence, fix, sites_from_spans(syncs))


def _sync_sites(ctx: RunView, syncs: pd.DataFrame) -> Finding:
    """`info`: frequent device syncs that cost little here, named because they cost more elsewhere."""
    total = float(syncs["dur_s"].sum())
    kinds = syncs["name"].value_counts()
    top = ", ".join(f"{name} x{n:,}" for name, n in kinds.head(3).items())
    calls = f"{len(syncs):,} blocking-sync call{'s' if len(syncs) != 1 else ''} ({top})"
    share = f"{total:.3f} s inside these calls ({total / ctx.window_s:.1%} of {ctx.window_text})"
    devices = "/".join(sorted(set(syncs["device"])))
    claim = (
        f"{calls} on {devices} cost little here: the GPU keeps up with the host, so they are not "
        "the bottleneck; on a slower GPU each one stalls the host"
    )
    first = f"{share}: below the {SYNC_BOUND_SHARE:.0%} of a sync-bound finding"
    fix = (
        "Nothing urgent on this device. Before running the same loop on a slower GPU, accumulate "
        "metrics on the device and read them once per epoch instead of at these lines."
    )
    return Finding("sync-sites", "info", claim, [first, *by_kind(syncs)], fix, sites_from_spans(syncs, by_count=True))
