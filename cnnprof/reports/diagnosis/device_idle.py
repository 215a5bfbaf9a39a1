"""`device-idle`: the GPU's utilisation is low during the steady-state steps: it waits for the host."""

from __future__ import annotations

from ..findings import Finding
from .context import GPU_DEVICES, RunView, total_s
from .sites import hot_user_sites, site_text

# Mean GPU utilisation below half: the GPU waits for the host more than it works.
DEVICE_IDLE_PCT = 50.0
# Below a fifth it is mostly idle: severity high.
DEVICE_IDLE_HIGH_PCT = 20.0


def rule_device_idle(ctx: RunView) -> list[Finding]:
    util = ctx.device_busy_pct
    if ctx.gpu is None or util is None or util >= DEVICE_IDLE_PCT:
        return []
    series = ctx.gpu
    severity = "high" if util < DEVICE_IDLE_HIGH_PCT else "medium"
    evidence = [
        f"mean GPU utilisation {util:.0f}% during {ctx.window_text} ({total_s(ctx.window):.2f} s; idle below "
        f"{DEVICE_IDLE_PCT:.0f}%) ({series.metric} from {series.source})"
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
