"""`device-idle`: the GPU's utilisation is low during the steady-state steps: it waits for the host."""

from __future__ import annotations

from ..findings import Finding
from .context import GPU_DEVICES, RunView, total_s
from .sites import hot_user_sites, site_text

# The GPU busy below 70 % of the steady-state step (the GPU trace's kernel time where there is
# one, RunView.traced_busy_pct; else NVML's or powermetrics' utilisation): it waits for the host
# almost a third of the step, which launch-side fixes win back. Measured on the H200: the tuned
# torch loop traced at 50-54 % busy, and its CUDA-graphed, compiled step trains 2.4x faster; MLX's
# tuned loop read 51 % (NVML) and 50 % (CUPTI), host-bound, and fewer kernels launched directly
# made it 3.2x faster. NVML's share of sampling periods with a kernel did not read higher than
# the trace there (torch 32 % against 50 %; MLX 81 % against 80 %), so one line serves both.
DEVICE_IDLE_PCT = 70.0
# Below a fifth it is mostly idle: severity high.
DEVICE_IDLE_HIGH_PCT = 20.0


def rule_device_idle(ctx: RunView) -> list[Finding]:
    util = ctx.device_busy_pct
    if util is None or util >= DEVICE_IDLE_PCT:
        return []
    severity = "high" if util < DEVICE_IDLE_HIGH_PCT else "medium"
    source = (
        f"GPU trace of {ctx.gpu_trace.steps} steps, CUPTI"
        if ctx.traced_busy_pct is not None and ctx.gpu_trace is not None
        else f"{ctx.gpu.metric} from {ctx.gpu.source}" if ctx.gpu is not None else "?"
    )
    evidence = [
        f"GPU busy {util:.0f}% during {ctx.window_text} ({total_s(ctx.window):.2f} s; idle below "
        f"{DEVICE_IDLE_PCT:.0f}%) ({source})"
    ]
    if ctx.busy_caveat:
        evidence.append(ctx.busy_caveat)
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
