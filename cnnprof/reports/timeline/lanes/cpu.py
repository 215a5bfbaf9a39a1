"""CPU busy by cluster (Apple E/P, Intel hybrid P/E), all CPUs and the training process; where the
machine has no clusters, the cores lane (cores.py) draws each core instead."""

from __future__ import annotations

from ..lane import Lane, LaneContext

PROCESS = ("proc_cpu_pct", "proc_main_cpu_pct")  # % of one core: the tree, the main process alone
MACHINE_WIDE = ("cpu_busy_pct", *PROCESS)  # drawn with the clusters, never alone


def cluster_keys(ctx: LaneContext) -> list[tuple[str, str]]:
    return [k for k in ctx.tel.in_lane("cpu") if k[1] not in MACHINE_WIDE]


def build(ctx: LaneContext) -> list[Lane]:
    if not cluster_keys(ctx):
        if not ctx.tel.in_lane("cores"):
            ctx.absent.append(ctx.why_missing("CPU lane", ("powermetrics", "procfs")))
        return []
    keys = ctx.tel.in_lane("cpu")
    cpus = ctx.run.record.host.logical_cpus
    # The processes' CPU is % of one core: as a share of all CPUs it shares the axis.
    scale = {k: 1.0 / cpus for k in keys if k[1] in PROCESS} if cpus else {}
    keys = [k for k in keys if k[1] not in PROCESS or scale]
    yaxis = {"range": [0, 105], "ticksuffix": " %"}
    labels = {
        "proc_cpu_pct": "training process and children (share of all CPUs)",
        "proc_main_cpu_pct": "training process alone (share of all CPUs)",
    }
    return [ctx.line_lane("cpu", "CPU clusters (busy)", 120, keys, yaxis, scale, labels)]
