"""Intel/AMD RAPL energy counters (Linux powercap): package, core, uncore, DRAM, psys power.

Each zone `intel-rapl:N[:M]` under `<sysfs>/class/powercap` has a `name` and a cumulative
`energy_uj` that wraps at `max_energy_range_uj`. Power is the energy difference over the time
between two reads, so like powermetrics each row is an average over a window that ends at the
row's time; `window_ms` says how long. Subzones are named after their parent: `package-0-dram`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .base import Reading, Source, SourceConfig, SourceStatus, unavailable

FIX_PERMISSIONS = "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj (until the next boot)"


@dataclass
class _Zone:
    domain: str
    energy_file: Path
    max_range_uj: int
    last_uj: int


def energy_delta_uj(previous: int, current: int, max_range_uj: int) -> int:
    """Energy between two counter reads; the counter wraps to 0 after `max_range_uj`."""
    return current - previous if current >= previous else current + max_range_uj - previous


class RaplSource(Source):
    name = "rapl"

    def __init__(self, config: SourceConfig, *, sysfs_root: Path = Path("/sys")) -> None:
        super().__init__(config)
        self._root = Path(sysfs_root) / "class/powercap"
        self._zones: list[_Zone] = []
        self._last_ns = 0

    def probe(self) -> SourceStatus:
        zone_dirs = sorted(self._root.glob("intel-rapl:*")) if self._root.is_dir() else []
        if not zone_dirs:
            return unavailable(
                "no RAPL zones (/sys/class/powercap/intel-rapl:*): not an Intel/AMD Linux host, or a VM that hides them"
            )
        names = {d.name: _read_text(d / "name") or d.name for d in zone_dirs}
        unreadable: list[str] = []
        for zone in zone_dirs:
            parts = zone.name.split(":")
            domain = names[zone.name]
            if len(parts) > 2:  # a subzone: "intel-rapl:0:1" belongs to "intel-rapl:0"
                domain = f"{names.get(':'.join(parts[:2]), parts[1])}-{domain}"
            try:
                energy = int((zone / "energy_uj").read_text())
                max_range = int((zone / "max_energy_range_uj").read_text())
            except PermissionError:
                unreadable.append(zone.name)
                continue
            except (OSError, ValueError):
                continue
            self._zones.append(_Zone(domain, zone / "energy_uj", max_range, energy))
        if not self._zones:
            if unreadable:
                return unavailable("RAPL energy_uj is readable by root only", FIX_PERMISSIONS)
            return unavailable("RAPL zones present but their counters are unreadable")
        self._last_ns = time.perf_counter_ns()  # the counters were read just now
        self.metrics = {
            f"{z.domain}.power_w": ("W", f"RAPL {z.domain} power, average since the previous row") for z in self._zones
        }
        self.metrics["window_ms"] = ("ms", "length of the window the power rows average")
        return SourceStatus(True)

    def read(self, now_ns: int, final: bool = False) -> list[Reading]:
        seconds = (now_ns - self._last_ns) / 1e9
        if seconds <= 0:
            return []
        rows: list[Reading] = []
        for zone in self._zones:
            try:
                current = int(zone.energy_file.read_text())
            except (OSError, ValueError):
                continue
            joules = energy_delta_uj(zone.last_uj, current, zone.max_range_uj) / 1e6
            zone.last_uj = current
            rows.append((now_ns, f"{zone.domain}.power_w", joules / seconds))
        if rows:
            rows.append((now_ns, "window_ms", seconds * 1e3))
        self._last_ns = now_ns
        return rows

    def close(self) -> None:
        """Nothing held: each read opens and closes its file."""


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
