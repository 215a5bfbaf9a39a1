"""The live panel: a `LiveState` drawn as a compact rich renderable, in the spirit of asitop.

One line per thing the run measures (GPU, CPU, power, memory, steps, syncs, verdict); a line whose
telemetry is absent here is left out rather than shown empty.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .state import PARTS, LiveState
from .verdict import live_verdict

SPARKS = "▁▂▃▄▅▆▇█"
BAR_WIDTH = 20
PART_STYLE = {
    "data": "yellow",
    "forward": "blue",
    "backward": "magenta",
    "optimizer": "cyan",
    "sync": "red",
    "other": "grey50",
}
PART_SHORT = {"data": "data", "forward": "fwd", "backward": "bwd", "optimizer": "opt", "sync": "sync", "other": "other"}
VERDICT_STYLE = {"sync-bound": "bold red", "input-bound": "bold yellow", "launch-bound": "bold magenta"}


def bar(pct: float, width: int = BAR_WIDTH) -> Text:
    filled = round(max(0.0, min(100.0, pct)) / 100 * width)
    return Text("█" * filled, style="green") + Text("░" * (width - filled), style="grey35")


def sparkline(values: Iterable[float], top: float = 100.0, width: int = 30) -> str:
    vals = list(values)[-width:]
    return "".join(SPARKS[min(len(SPARKS) - 1, int(max(0.0, v) / top * len(SPARKS)))] for v in vals)


def _num(value: float | None, spec: str = ".0f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _gpu_rows(st: LiveState) -> list[tuple[str, RenderableType]]:
    t = st.telemetry
    rows: list[tuple[str, RenderableType]] = []
    prefixes = sorted(
        {k[len("nvml.") : -len("gpu_util_pct")] for k in t if k.startswith("nvml.") and k.endswith("gpu_util_pct")}
    )
    for prefix in prefixes:
        key = f"nvml.{prefix}"
        busy = t[f"{key}gpu_util_pct"]
        line = Text(f"{_num(t.get(key + 'sm_clock_mhz'), '5.0f')} MHz  busy ") + bar(busy) + Text(f" {busy:3.0f} %")
        line += Text(f"  {_num(t.get(key + 'power_w'), '6.1f')} W")
        if (mem := t.get(key + "mem_used_mb")) is not None:
            line += Text(f"  mem {mem / 1024:5.1f} GiB")
        if (temp := t.get(key + "temp_c")) is not None:
            line += Text(f"  {temp:3.0f} °C")
        rows.append((f"GPU{prefix.rstrip('.').removeprefix('gpu')}" if prefix else "GPU", line))
    if (busy := t.get("powermetrics.gpu_active_pct")) is not None:
        line = Text(f"{_num(t.get('powermetrics.gpu_freq_mhz'), '5.0f')} MHz  busy ") + bar(busy)
        line += Text(f" {busy:3.0f} %  {_num(t.get('powermetrics.gpu_power_w'), '5.1f')} W")
        rows.append(("GPU", line))
    history = [v for k, h in st.history.items() if k.endswith(("gpu_util_pct", "gpu_active_pct")) for v in h]
    if history:
        rows.append(("", Text(sparkline(history), style="green")))
    return rows


def _cpu_rows(st: LiveState) -> list[tuple[str, RenderableType]]:
    t = st.telemetry
    rows: list[tuple[str, RenderableType]] = []
    for kind in ("e", "p"):
        if (busy := t.get(f"powermetrics.{kind}_cluster_active_pct")) is not None:
            freq = t.get(f"powermetrics.{kind}_cluster_freq_mhz")
            rows.append(
                (f"{kind.upper()}-CPU", Text(f"{_num(freq, '5.0f')} MHz  busy ") + bar(busy) + Text(f" {busy:3.0f} %"))
            )
    cores = sorted(
        ((int(k.split(".")[2]), v) for k, v in t.items() if k.startswith("procfs.cpu.") and k.endswith(".busy_pct")),
    ) or sorted(
        (
            (int(k.split(".")[2]), v)
            for k, v in t.items()
            if k.startswith("powermetrics.core.") and k.endswith(".active_pct")
        )
    )
    if cores:
        heat = sparkline((v for _, v in cores), width=len(cores))
        mean = t.get("procfs.cpu_busy_pct", sum(v for _, v in cores) / len(cores))
        line = Text(f"{len(cores)} cores ") + Text(heat, style="cyan") + Text(f"  mean {mean:3.0f} %")
        for kind, label in (("p", "P"), ("e", "E")):
            if (v := t.get(f"procfs.{kind}_cores_busy_pct")) is not None:
                line += Text(f"  {label} {v:3.0f} %")
        rows.append(("CPU", line))
    return rows


def _power_rows(st: LiveState) -> list[tuple[str, RenderableType]]:
    t = st.telemetry
    parts = [
        f"{name} {t[f'powermetrics.{key}']:.2f} W"
        for name, key in (
            ("CPU", "cpu_power_w"),
            ("GPU", "gpu_power_w"),
            ("ANE", "ane_power_w"),
            ("total", "combined_power_w"),
        )
        if f"powermetrics.{key}" in t
    ]
    parts += [
        f"{k.split('.')[1]} {v:.1f} W" for k, v in sorted(t.items()) if k.startswith("rapl.") and k.endswith(".power_w")
    ]
    return [("power", Text("  ".join(parts)))] if parts else []


def _memory_rows(st: LiveState) -> list[tuple[str, RenderableType]]:
    t = st.telemetry
    if (rss := t.get("procfs.proc_rss_mb")) is None:
        return []
    return [
        (
            "memory",
            Text(
                f"process {rss / 1024:.2f} GiB RSS, CPU {_num(t.get('procfs.proc_cpu_pct'), '.0f')} % of a core "
                "with its workers"
            ),
        )
    ]


def split_bar(split: dict[str, float], width: int = 40) -> Text:
    total = sum(split.values()) or 1.0
    out = Text()
    for part in (*PARTS, "other"):
        n = round(split.get(part, 0.0) / total * width)
        out += Text("█" * n, style=PART_STYLE[part])
    return out


def _step_rows(st: LiveState) -> list[tuple[str, RenderableType]]:
    rate = _num(st.steps_per_s, ".1f", "/s")
    line = Text(f"{st.steps:,} done, {rate}")
    if (last := st.last_step) is not None:
        line += Text(f"   last {last.seconds * 1e3:.1f} ms  ") + split_bar(last.split)
        total = last.seconds or 1.0
        legend = Text()
        for part in (*PARTS, "other"):
            share = last.split.get(part, 0.0) / total
            if share >= 0.005:
                legend += Text(f"{PART_SHORT[part]} {100 * share:.0f} %  ", style=PART_STYLE[part])
        rows = [("steps", line), ("", legend)]
    else:
        rows = [("steps", line + Text("   (no step boundary seen yet)", style="grey50"))]
    rows.append(("syncs", Text(f"{st.syncs:,} device waits, {_num(st.syncs_per_s, '.1f', '/s')}")))
    return rows


def render(st: LiveState) -> RenderableType:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", width=7)
    grid.add_column()
    for rows in (_gpu_rows(st), _cpu_rows(st), _power_rows(st), _memory_rows(st), _step_rows(st)):
        for label, value in rows:
            grid.add_row(label, value)
    verdict = live_verdict(st)
    so_far = Text("so far: ", style="bold")
    so_far += Text(verdict.label or "-", style=VERDICT_STYLE.get(verdict.label, "bold green"))
    so_far += Text(f"  {verdict.reason}")
    elapsed = int(st.elapsed_s)
    title = f"cnnprof live · {st.label or st.run_dir.name} · {st.status} · {elapsed // 60:02d}:{elapsed % 60:02d}"
    if st.progress:
        title += f" · {st.progress}"
    return Panel(Group(grid, so_far), title=title, title_align="left", subtitle=str(st.run_dir), subtitle_align="right")
