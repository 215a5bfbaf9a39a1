"""macmon (Apple Silicon, no sudo): `macmon pipe -i MS --soc-info` prints one JSON object per
window. It reads the counters powermetrics reads (IOReport, SMC) without root, so where it is
installed `--telemetry auto` samples it instead of powermetrics (registry.FALLBACKS).

Metrics carry powermetrics' names where they measure the same thing (`gpu_freq_mhz`,
`gpu_active_pct`, `e_cluster_active_pct`, `cpu_power_w`, ...), so lanes and rules read either.
Format facts by version (tests/fixtures/macmon/README.md):
- every version: `cpu_power`, `gpu_power`, `ane_power`, `all_power` (W; `all_power` = CPU + GPU +
  ANE, powermetrics' `combined_power`), `temp` (degC, 0 = no sensor), `memory` (bytes).
- `ecpu_usage` / `pcpu_usage` / `gpu_usage` are `[MHz, ratio]`, where the ratio is *frequency
  scaled* (active residency x MHz / max MHz), not the active residency: it becomes
  `*_scaled_pct`, never `*_active_pct`. v0.8 keeps them as aliases.
- v0.3+: `sys_power` (W, the whole machine, SMC; 0 when unreadable). v0.5+: `ram_power`,
  `gpu_ram_power`. v0.6+: `timestamp`. v0.7+: `--soc-info` adds `soc`.
- v0.8+: `*_active_ratio` (active residency: powermetrics' `1 - idle_ratio`), `*_scaled_ratio`,
  `*_freq_mhz`, per-core `ecpu_cores` / `pcpu_cores`, `fans`; `soc.ecpu_label` / `pcpu_label`
  name the two tiers (E/P on M1-M4, E/S or P/S on M5).

Rows are stamped with perf_counter_ns when a line arrives (the end of its window, as for
powermetrics) and each has `window_ms`: the time since the previous line (the first: the asked
interval), so energy integrates over the windows macmon averaged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
from typing import Any

from .base import MetricTable, SourceConfig, SourceStatus, unavailable
from .piped import PipedSource

log = logging.getLogger(__name__)

# Overrides the macmon executable (default: found on PATH). Set, it also lifts the macOS check:
# tests replay recordings through a stand-in on Linux.
EXECUTABLE_ENV = "CNNPROF_MACMON"
INSTALL_FIX = "brew install macmon"
MIN_INTERVAL_MS = 100  # macmon clamps -i to at least this

METRICS: MetricTable = {
    "cpu_power_w": ("W", "CPU power, average over the window"),
    "gpu_power_w": ("W", "GPU power, average over the window"),
    "ane_power_w": ("W", "Neural Engine power, average over the window"),
    "combined_power_w": ("W", "CPU + GPU + ANE power, average over the window"),
    "board_power_w": ("W", "whole-machine power (SMC), average over the window"),
    "dram_power_w": ("W", "DRAM power, average over the window"),
    "gpu_sram_power_w": ("W", "GPU SRAM power, average over the window"),
    "gpu_freq_mhz": ("MHz", "GPU frequency, average over the window's active time"),
    "gpu_active_pct": ("%", "GPU active residency"),
    "gpu_scaled_pct": ("%", "GPU active residency x frequency / max frequency"),
    "cpu_busy_pct": ("%", "mean active residency over all CPU cores"),
    "e_cluster_active_pct": ("%", "E cores: mean active residency"),
    "p_cluster_active_pct": ("%", "P cores: mean active residency"),
    "e_cluster_freq_mhz": ("MHz", "E cores: busy-weighted mean frequency"),
    "p_cluster_freq_mhz": ("MHz", "P cores: busy-weighted mean frequency"),
    "e_cluster_scaled_pct": ("%", "E cores: active residency x frequency / max frequency"),
    "p_cluster_scaled_pct": ("%", "P cores: active residency x frequency / max frequency"),
    "cluster.*.active_pct": ("%", "one CPU tier (macmon's ecpu or pcpu): mean active residency"),
    "cluster.*.freq_mhz": ("MHz", "one CPU tier: busy-weighted mean frequency"),
    "cluster.*.scaled_pct": ("%", "one CPU tier: active residency x frequency / max frequency"),
    "core.*.active_pct": ("%", "one CPU core (tier, die, core): active residency"),
    "core.*.freq_mhz": ("MHz", "one CPU core: average frequency while active"),
    "cpu_temp_c": ("degC", "CPU temperature, mean of the SMC sensors"),
    "gpu_temp_c": ("degC", "GPU temperature, mean of the SMC sensors"),
    "ram_used_mb": ("MiB", "machine RAM in use"),
    "swap_used_mb": ("MiB", "swap in use"),
    "fan.*.rpm": ("rpm", "fan speed"),
    "window_ms": ("ms", "length of the window the sample averages (it ends at the row's time)"),
}

_POWER = {
    "cpu_power": "cpu_power_w",
    "gpu_power": "gpu_power_w",
    "ane_power": "ane_power_w",
    "all_power": "combined_power_w",
}
# macmon writes 0.0 where it could not read these (no SMC key, no DRAM channel): left out.
_POWER_ZERO_IS_MISSING = {
    "sys_power": "board_power_w",
    "ram_power": "dram_power_w",
    "gpu_ram_power": "gpu_sram_power_w",
}
MIB = 1 << 20


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num(d: Any, key: str) -> float | None:
    value = d.get(key) if isinstance(d, dict) else None
    return float(value) if _is_number(value) else None


def _pair(d: dict[str, Any], key: str) -> tuple[float | None, float | None]:
    """The `[MHz, scaled ratio]` tuples of every version."""
    value = d.get(key)
    if isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value):
        return float(value[0]), float(value[1])
    return None, None


def _label(soc: Any, key: str, default: str) -> str:
    value = soc.get(key) if isinstance(soc, dict) else None
    return re.sub(r"[^A-Za-z0-9]", "", value) if isinstance(value, str) and value.strip() else default


def _tier(doc: dict[str, Any], kind: str, label: str, out: dict[str, float]) -> None:
    """One CPU tier (`ecpu` or `pcpu`) as powermetrics would name it."""
    freq, scaled = _pair(doc, f"{kind}_usage")
    freq = _num(doc, f"{kind}_freq_mhz") if _num(doc, f"{kind}_freq_mhz") is not None else freq
    scaled = _num(doc, f"{kind}_scaled_ratio") if _num(doc, f"{kind}_scaled_ratio") is not None else scaled
    active = _num(doc, f"{kind}_active_ratio")
    cores = doc.get(f"{kind}_cores")
    weighted: list[tuple[float, float]] = []
    for core in cores if isinstance(cores, list) else []:
        busy, mhz = _num(core, "active_ratio"), _num(core, "freq_mhz")
        core_id, die = _num(core, "core_id"), _num(core, "die_id") or 0.0
        if core_id is None:
            continue
        name = f"core.{label}{int(die)}_{int(core_id)}"
        if busy is not None:
            out[f"{name}.active_pct"] = 100.0 * busy
        if mhz is not None:
            out[f"{name}.freq_mhz"] = mhz
        if busy is not None and mhz is not None:
            weighted.append((busy, mhz))
    # powermetrics' cluster MHz is the busy-weighted mean of its cores; macmon's own is the plain
    # mean. With cores, compute powermetrics' figure; without (or all idle), take macmon's.
    weight = sum(b for b, _ in weighted)
    if weight > 0:
        freq = sum(b * f for b, f in weighted) / weight
    prefixes = [f"cluster.{label}."] + ([f"{label.lower()}_cluster_"] if label in ("E", "P") else [])
    for prefix in prefixes:
        if active is not None:
            out[f"{prefix}active_pct"] = 100.0 * active
        if freq is not None:
            out[f"{prefix}freq_mhz"] = freq
        if scaled is not None:
            out[f"{prefix}scaled_pct"] = 100.0 * scaled


def sample_values(doc: dict[str, Any]) -> dict[str, float]:
    """The metrics of one macmon JSON object; whatever key is missing is left out."""
    out: dict[str, float] = {}
    for key, metric in _POWER.items():
        if (watts := _num(doc, key)) is not None:
            out[metric] = watts
    for key, metric in _POWER_ZERO_IS_MISSING.items():
        if (watts := _num(doc, key)) is not None and watts > 0:
            out[metric] = watts

    freq, scaled = _pair(doc, "gpu_usage")
    if (mhz := _num(doc, "gpu_freq_mhz")) is not None:
        freq = mhz
    if (ratio := _num(doc, "gpu_scaled_ratio")) is not None:
        scaled = ratio
    if freq is not None:
        out["gpu_freq_mhz"] = freq
    if scaled is not None:
        out["gpu_scaled_pct"] = 100.0 * scaled
    if (active := _num(doc, "gpu_active_ratio")) is not None:
        out["gpu_active_pct"] = 100.0 * active
    if (cpu := _num(doc, "cpu_active_ratio")) is not None:
        out["cpu_busy_pct"] = 100.0 * cpu

    soc = doc.get("soc")
    _tier(doc, "ecpu", _label(soc, "ecpu_label", "E"), out)
    _tier(doc, "pcpu", _label(soc, "pcpu_label", "P"), out)

    temp = doc.get("temp")
    for key, metric in (("cpu_temp_avg", "cpu_temp_c"), ("gpu_temp_avg", "gpu_temp_c")):
        if (celsius := _num(temp, key)) is not None and 0 < celsius <= 150:  # 0: no sensor read
            out[metric] = celsius
    memory = doc.get("memory")
    for key, metric in (("ram_usage", "ram_used_mb"), ("swap_usage", "swap_used_mb")):
        if (used := _num(memory, key)) is not None:
            out[metric] = used / MIB
    fans = doc.get("fans")
    for fan in fans if isinstance(fans, list) else []:
        name = fan.get("name") if isinstance(fan, dict) else None
        if isinstance(name, str) and (rpm := _num(fan, "rpm")) is not None:
            out[f"fan.{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.rpm"] = rpm
    return out


class LineParser:
    """Bytes in (any chunking), one dict of metrics per JSON line; a bad line is skipped and counted."""

    def __init__(self) -> None:
        self._buf = b""
        self.skipped = 0

    def feed(self, chunk: bytes) -> list[dict[str, float]]:
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        return [values for line in lines if (values := self._parse(line)) is not None]

    def close(self) -> None:
        """End of stream: an unfinished last line is a torn sample."""
        if self._buf.strip():
            self.skipped += 1
            log.warning("skipped a truncated macmon line (%d bytes)", len(self._buf))
        self._buf = b""

    def _parse(self, line: bytes) -> dict[str, float] | None:
        if not line.strip():
            return None
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError(f"a JSON {type(doc).__name__}, not an object")
        except ValueError as exc:  # JSON and UTF-8 errors alike: skip, never stop
            self.skipped += 1
            log.warning("skipped an unreadable macmon line (%s)", exc)
            return None
        return sample_values(doc)


def parse_lines(data: bytes) -> tuple[list[dict[str, float]], int]:
    """A saved `macmon pipe` capture -> (the samples, the lines skipped)."""
    parser = LineParser()
    samples = parser.feed(data)
    parser.close()
    return samples, parser.skipped


class MacmonSource(PipedSource):
    """Runs `macmon pipe` as a child process; piped.py reads its lines as they arrive."""

    name = "macmon"

    def __init__(self, config: SourceConfig, *, require_macos: bool = True, executable: str | None = None) -> None:
        super().__init__(config)
        self.metrics = dict(METRICS)
        self._require_macos = require_macos
        self._executable = executable
        self._parser = LineParser()
        self._interval_ms = max(MIN_INTERVAL_MS, config.interval_ms)
        self._last_ns: int | None = None

    def command(self, soc_info: bool = True) -> list[str] | SourceStatus:
        override = self._executable or os.environ.get(EXECUTABLE_ENV)
        if self._require_macos and not override and sys.platform != "darwin":
            return unavailable("macmon exists only on macOS (Apple Silicon)")
        found = shutil.which(override or "macmon")
        if found is None:
            return unavailable(f"{override or 'macmon'} not found on PATH (it reads power without sudo)", INSTALL_FIX)
        cmd = [os.path.abspath(found), "pipe", "-i", str(self._interval_ms)]
        return [*cmd, "--soc-info"] if soc_info else cmd

    def probe(self) -> SourceStatus:
        cmd = self.command()
        if isinstance(cmd, SourceStatus):
            return cmd
        why = self.start(cmd)
        if why is not None and "soc-info" in why:
            # Before v0.7 there is no --soc-info (tier labels matter on M5 only): run without.
            self.close()
            self._parser = LineParser()
            why = self.start(cmd[:-1])
        if why is None:
            return SourceStatus(True)
        return unavailable(f"macmon failed: {why}", f"brew upgrade macmon (or {INSTALL_FIX})")

    def feed(self, chunk: bytes) -> list[dict[str, float]]:
        now = time.perf_counter_ns()
        samples = self._parser.feed(chunk)
        for i, values in enumerate(samples):
            # Lines that arrive together (a stalled reader) each get the asked interval.
            gap_ms = (now - self._last_ns) / 1e6 if i == 0 and self._last_ns is not None else self._interval_ms
            values["window_ms"] = gap_ms
        if samples:
            self._last_ns = now
        return samples

    def end_of_stream(self) -> None:
        self._parser.close()
