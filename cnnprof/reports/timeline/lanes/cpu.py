"""CPU busy by cluster (Apple E/P, Intel hybrid P/E), all CPUs and the training process; where the
machine has no clusters, the cores lane (cores.py) draws each core instead."""

from __future__ import annotations

from ..lane import Lane, LaneContext

PRETTY = {
    "e_cluster_active_pct": "E cluster",
    "p_cluster_active_pct": "P cluster",
    "p_cores_busy_pct": "P cores",
    "e_cores_busy_pct": "E cores",
    "cpu_busy_pct": "all CPUs",
    "proc_cpu_pct": "training process (share of all CPUs)",
}
PER_CORE = r"(cpu|core)\.\d+\.(busy|active)_pct"


def cluster_keys(ctx: LaneContext) -> list[tuple[str, str]]:
    clusters = ctx.tel.find("e_cluster_active_pct", "p_cluster_active_pct")
    clusters = clusters or ctx.tel.matching(r"cluster\.[^.]+\.active_pct")
    return clusters + ctx.tel.find("p_cores_busy_pct", "e_cores_busy_pct")


def build(ctx: LaneContext) -> list[Lane]:
    keys = cluster_keys(ctx)
    if not keys:
        if not ctx.tel.matching(PER_CORE):
            ctx.absent.append(ctx.why_missing("CPU lane", ("powermetrics", "procfs")))
        return []
    proc = ctx.tel.find("proc_cpu_pct")
    cpus = ctx.run.record.host.logical_cpus
    scale = {k: 1.0 / cpus for k in proc} if cpus else {}
    keys += ctx.tel.find("cpu_busy_pct") + (proc if scale else [])
    yaxis = {"range": [0, 105], "ticksuffix": " %"}
    return [ctx.line_lane("cpu", "CPU clusters (busy)", 120, keys, yaxis, PRETTY, scale)]
