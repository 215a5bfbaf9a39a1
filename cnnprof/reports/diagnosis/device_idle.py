"""`device-idle`: the GPU's utilisation is low during the steady-state steps: it waits for the host."""

from __future__ import annotations

from ..findings import Finding
from .context import GPU_DEVICES, RunView, total_s
from .sites import hot_user_sites, site_text

# Mean GPU utilisation (NVML, powermetrics) below half: the GPU waits for the host more than it
# works. Telemetry's figure is a share of sampling periods in which a kernel ran, so it reads high.
DEVICE_IDLE_PCT = 50.0
# The GPU trace's busy share is kernel time itself (RunView.traced_busy_pct): below 70 % the GPU
# waits for the host almost a third of the step, which launch-side fixes win back (H200: the tuned
# loop traced at 54 % busy; its CUDA-graphed, compiled step trains 2.4x faster).
TRACED_IDLE_PCT = 70.0
# Below a fifth it is mostly idle: severity high.
DEVICE_IDLE_HIGH_PCT = 20.0


def idle_below_pct(ctx: RunView) -> float:
    """Below this busy share the GPU counts as waiting for the host (by the figure's source)."""
    return TRACED_IDLE_PCT if ctx.traced_busy_pct is not None else DEVICE_IDLE_PCT


def rule_device_idle(ctx: RunView) -> list[Finding]:
    util = ctx.device_busy_pct
    line = idle_below_pct(ctx)
    if util is None or util >= line:
        return []
    severity = "high" if util < DEVICE_IDLE_HIGH_PCT else "medium"
    source = (
        f"GPU trace of {ctx.gpu_trace.steps} steps, CUPTI"
        if ctx.traced_busy_pct is not None and ctx.gpu_trace is not None
        else f"{ctx.gpu.metric} from {ctx.gpu.source}" if ctx.gpu is not None else "?"
    )
    evidence = [
        f"GPU busy {util:.0f}% during {ctx.window_text} ({total_s(ctx.window):.2f} s; idle below "
        f"{line:.0f}%) ({source})"
    ]
    split = ctx.split
    if split:
        evidence.append(f"host blocked in syncs {split['sync']:.2f} s, loading batches {split['data']:.2f} s")
    else:
        syncs = ctx.syncs[ctx.syncs["device"].isin(GPU_DEVICES)]
        if not syncs.empty:
            evidence.append(f"host blocked in syncs {syncs['dur_s'].sum():.2f} s")
    sites = hot_user_sites(ctx, ctx.window)
    if sites:
        evidence.append(f"host time by user line (stack samples): {'; '.join(site_text(s) for s in sites[:3])}")
    return [
        Finding(
            "device-idle",
            severity,
            f"The GPU is busy only {util:.0f}% of the steady-state step time: it waits for the host "
            "(kernel launches, input, syncs)",
            evidence,
            "Give the GPU more work per launch and keep the host ahead of it: larger batches, a compiled "
            "step (torch.compile / mx.compile, CUDA graphs), fewer syncs, input loading in DataLoader workers.",
            sites,
        )
    ]
