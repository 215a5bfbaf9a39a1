"""The telemetry vocabulary: every metric a source may write, with its unit, what it means, the
timeline lane that draws it and its short label. Sources describe their metrics from here
(`table`), the timeline picks a lane's series by it (`lane_of`), the report labels them by it.

One measurement has one name. Names a source or an older run used for a measurement that has a
name here are `aliases`: the readers (traces/series.py) translate them, so old runs still draw.
A name with `*` stands for a family (`cpu.*.busy_pct`: one per logical CPU). An NVML metric may
carry a `gpuN.` prefix (the second and later GPUs); it is not part of the name.

Adding a metric: one entry here, the source that measures it, and (for a new lane) one module in
reports/timeline/lanes/ (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    description: str
    lane: str = ""  # the timeline lane that draws it; "" for none
    label: str = ""  # in a legend or a card; the name itself when empty
    aliases: tuple[str, ...] = ()


VOCABULARY: tuple[Metric, ...] = (
    # GPU
    Metric("gpu_freq_mhz", "MHz", "GPU frequency, average over the window", "gpu_clock", "GPU clock"),
    Metric("sm_clock_mhz", "MHz", "SM clock", "gpu_clock", "SM clock"),
    Metric("mem_clock_mhz", "MHz", "memory clock"),
    Metric(
        "gpu_util_pct",
        "%",
        "share of time the GPU was busy (NVML: a kernel ran; powermetrics: active residency)",
        "gpu_activity",
        "GPU busy",
        aliases=("gpu_active_pct",),
    ),
    Metric("mem_util_pct", "%", "share of time device memory was read or written", "gpu_activity", "memory busy"),
    Metric("gpu_scaled_pct", "%", "GPU active residency x frequency / max frequency (macmon's GPU usage)"),
    Metric("clock_event_reasons", "bitmask", "why clocks are held down (nvml_codes.decode_clock_event_reasons)"),
    # power (traces/energy.py integrates every `*power_w`)
    Metric("combined_power_w", "W", "CPU + GPU + ANE power, average over the window", "power", "package (CPU+GPU+ANE)"),
    Metric("cpu_power_w", "W", "CPU power, average over the window", "power", "CPU"),
    Metric("gpu_power_w", "W", "GPU power, average over the window", "power", "GPU"),
    Metric("ane_power_w", "W", "Neural Engine power, average over the window", "power", "ANE"),
    Metric("power_w", "W", "GPU board power, instantaneous", "power", "GPU board"),
    Metric("*.power_w", "W", "RAPL domain power, average since the previous row", "power"),
    Metric("board_power_w", "W", "whole-machine power (macmon: SMC), average over the window", "power", "board (SMC)"),
    Metric("dram_power_w", "W", "DRAM power, average over the window", "power", "DRAM"),
    Metric("gpu_sram_power_w", "W", "GPU SRAM power, average over the window", "power", "GPU SRAM"),
    Metric("power_avg_w", "W", "GPU board power, 1 s average (duplicates power_w smoothed)"),
    Metric("energy_j", "J", "energy counter since the sampler started"),
    Metric("window_ms", "ms", "length of the window the row's values average (it ends at the row's time)"),
    # CPU
    Metric("e_cores_busy_pct", "%", "mean busy % of the E cores", "cpu", "E cores", ("e_cluster_active_pct",)),
    Metric("p_cores_busy_pct", "%", "mean busy % of the P cores", "cpu", "P cores", ("p_cluster_active_pct",)),
    Metric(
        "cluster.*.busy_pct", "%", "one CPU cluster: mean busy % of its cores", "cpu", aliases=("cluster.*.active_pct",)
    ),
    Metric("e_cluster_scaled_pct", "%", "E cores: active residency x frequency / max frequency"),
    Metric("p_cluster_scaled_pct", "%", "P cores: active residency x frequency / max frequency"),
    Metric("cluster.*.scaled_pct", "%", "one CPU cluster: active residency x frequency / max frequency"),
    Metric("cpu_busy_pct", "%", "mean busy % over all logical CPUs", "cpu", "all CPUs"),
    Metric(
        "proc_cpu_pct", "%", "training process and its children (DataLoader / Pool workers): CPU, % of one core",
        "cpu", "training process tree",
    ),
    Metric("proc_main_cpu_pct", "%", "training process alone: CPU, % of one core", "cpu", "training process"),
    Metric("proc.*.cpu_pct", "%", "one child process (by pid): its own CPU, % of one core", "processes", "CPU"),
    Metric("cpu.*.busy_pct", "%", "one logical CPU: busy % over the interval", "cores", aliases=("core.*.active_pct",)),
    Metric("e_cores_freq_mhz", "MHz", "E cores: busy-weighted mean frequency", "cpu_clock", "E cores",
           ("e_cluster_freq_mhz",)),
    Metric("p_cores_freq_mhz", "MHz", "P cores: busy-weighted mean frequency", "cpu_clock", "P cores",
           ("p_cluster_freq_mhz",)),
    Metric("cluster.*.freq_mhz", "MHz", "one CPU cluster: busy-weighted mean frequency of its cores", "cpu_clock"),
    Metric("cpu.*.freq_mhz", "MHz", "one logical CPU: current frequency", aliases=("core.*.freq_mhz",)),
    Metric(
        "proc_preemptions_per_s", "1/s", "training process: involuntary context switches per second (the OS took "
        "the CPU away: more runnable threads than cores)", "preemptions", "training process"
    ),
    # memory
    Metric("mem_used_mb", "MiB", "device memory used", "memory", "device memory used"),
    Metric("proc_rss_mb", "MiB", "training process resident memory", "memory", "process RSS"),
    Metric("ram_used_mb", "MiB", "machine RAM in use", "memory", "machine RAM used"),
    Metric("swap_used_mb", "MiB", "swap in use", "memory", "swap used"),
    # thermal
    Metric("temp_c", "degC", "GPU temperature", "thermal", "temperature (°C)"),
    Metric("cpu_temp_c", "degC", "CPU temperature, mean of the SMC sensors", "thermal", "CPU temperature (°C)"),
    Metric("gpu_temp_c", "degC", "GPU temperature, mean of the SMC sensors", "thermal", "GPU temperature (°C)"),
    Metric("fan.*.rpm", "rpm", "fan speed"),
    Metric(
        "thermal_pressure_level", "level", "0 Nominal, 1 Moderate, 2 Heavy, 3 Trapping, 4 Sleeping", "thermal",
        "thermal pressure",
    ),
)


GPU_PREFIX = re.compile(r"^(gpu\d+)\.")


def metric_parts(metric: str) -> tuple[str, str]:
    """("gpu1", "power_w") for "gpu1.power_w"; ("", metric) otherwise."""
    m = GPU_PREFIX.match(metric)
    return (m.group(1), metric[m.end() :]) if m else ("", metric)


@cache
def _pattern(name: str) -> re.Pattern[str]:
    """A family name as a regex: each `*` one dot-free part, captured."""
    return re.compile(re.escape(name).replace(r"\*", "([^.]+)"))


@cache
def lookup(metric: str) -> Metric | None:
    """The vocabulary entry of a metric as a source writes it (a gpuN. prefix, a family member,
    an alias)."""
    base = metric_parts(canonical(metric))[1]
    for entry in VOCABULARY:
        if base == entry.name:
            return entry
    for entry in VOCABULARY:
        if "*" in entry.name and _pattern(entry.name).fullmatch(base):
            return entry
    return None


@cache
def canonical(metric: str) -> str:
    """The vocabulary's name for `metric` (an alias translated; prefix and family part kept)."""
    base = metric_parts(metric)[1]
    prefix = metric.removesuffix(base)
    for entry in VOCABULARY:
        for alias in entry.aliases:
            match = _pattern(alias).fullmatch(base)
            if match:
                name = entry.name
                for part in match.groups():
                    name = name.replace("*", part, 1)
                return prefix + name
    return metric


def order(metric: str) -> int:
    """Where the metric stands in the vocabulary (the order lanes list their series in)."""
    entry = lookup(metric)
    return VOCABULARY.index(entry) if entry else len(VOCABULARY)


def lane_of(metric: str) -> str:
    entry = lookup(metric)
    return entry.lane if entry else ""


def label(metric: str) -> str:
    entry = lookup(metric)
    base = metric_parts(metric)[1]
    return entry.label if entry and entry.label else base


def table(*names: str) -> dict[str, tuple[str, str]]:
    """A source's metric table (name -> (unit, description)) for the vocabulary's `names`."""
    out = {}
    for name in names:
        entry = next((e for e in VOCABULARY if e.name == name), None)
        if entry is None:
            raise KeyError(f"{name} is not in the telemetry vocabulary (traces/metrics.py)")
        out[name] = (entry.unit, entry.description)
    return out
