"""CPU load on any OS (psutil): per-core busy %, per-core frequency where sysfs exposes it, the
training process's CPU % and RSS, and the P/E split of Intel hybrid CPUs.

`proc_cpu_pct` is the whole process tree: the training process, its DataLoader / Pool workers and
any other descendants; `proc_main_cpu_pct` the training process alone; `proc.<pid>.cpu_pct` each
live child (its own time, the report's process lanes draw it). The tree's CPU time is
`TreeCpu`: each process's user + system time plus its reaped children's (psutil's
`children_user` / `children_system`), so a worker that ended between two reads still counts up to
its end, through its parent's counters, once its parent has waited for it (DataLoader and Pool
workers are joined). Where the OS keeps no reaped-children times (macOS, Windows: psutil says 0),
a child that ended loses the part of its last interval. Preemptions (involuntary context
switches) are the training process's own.

Busy % is computed from `psutil.cpu_times(percpu=True)` differences between two reads. A read less
than half an interval after the previous one (the first cycle, right after probing; the final read
at stop) gives no busy rows: percentages over a few ms are noise. Frequencies and the hybrid core
lists are read from sysfs under `sysfs_root` (a parameter so tests can hand in a fake tree).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ...traces.metrics import table
from .base import Reading, Source, SourceConfig, SourceStatus, unavailable

MIB = 2**20


def parse_cpu_list(text: str) -> list[int]:
    """sysfs CPU lists: "0-7,16,18-19" -> [0, ..., 7, 16, 18, 19]."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus += range(int(first), int(last or first) + 1)
    return cpus


def _busy_and_total(times: Any) -> tuple[float, float]:
    """(busy, total) seconds of one CPU. Linux's guest times are already inside user/nice, and
    iowait is idle time."""
    fields = times._asdict()
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, total


class ProcfsSource(Source):
    name = "procfs"

    def __init__(self, config: SourceConfig, *, sysfs_root: Path = Path("/sys")) -> None:
        super().__init__(config)
        self._sysfs = Path(sysfs_root)
        self._last: list[tuple[float, float]] = []
        self._last_ns = 0
        self._freq_files: dict[int, Path] = {}
        self._switches: tuple[int, int] | None = None  # (ns, involuntary context switches so far)
        self._hybrid: dict[str, list[int]] = {}
        self._process: psutil.Process | None = None
        self._cpu: TreeCpu | None = None

    def probe(self) -> SourceStatus:
        try:
            self._last = [_busy_and_total(t) for t in psutil.cpu_times(percpu=True)]
            self._last_ns = time.perf_counter_ns()
        except (OSError, RuntimeError, NotImplementedError) as exc:
            return unavailable(f"per-core CPU times unreadable: {exc}")
        n = len(self._last)
        self.metrics = {
            "cpu.*.busy_pct": ("%", "one logical CPU: busy % over the interval"),
            "cpu_busy_pct": ("%", "mean busy % over all logical CPUs"),
        }
        for cpu in range(n):
            path = self._sysfs / f"devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"
            if _read_number(path) is not None:
                self._freq_files[cpu] = path
        if self._freq_files:
            self.metrics["cpu.*.freq_mhz"] = ("MHz", "one logical CPU: current frequency (cpufreq)")
        for kind, folder in (("p", "cpu_core"), ("e", "cpu_atom")):
            try:
                cpus = parse_cpu_list((self._sysfs / "devices" / folder / "cpus").read_text())
            except (OSError, ValueError):
                continue
            if cpus := [c for c in cpus if c < n]:
                self._hybrid[kind] = cpus
                label = "P (Core)" if kind == "p" else "E (Atom)"
                self.metrics[f"{kind}_cores_busy_pct"] = ("%", f"mean busy % of the {label} cores")
        try:
            self._process = psutil.Process(self.config.target_pid)
            self._cpu = TreeCpu(self._process, self._last_ns)
        except psutil.Error:
            self._process = None  # the machine figures still make sense without the process
        else:
            names = ("proc_cpu_pct", "proc_main_cpu_pct", "proc.*.cpu_pct", "proc_rss_mb", "proc_preemptions_per_s")
            self.metrics.update(table(*names))
        return SourceStatus(True)

    def read(self, now_ns: int, final: bool = False) -> list[Reading]:
        rows: list[Reading] = []
        current = [_busy_and_total(t) for t in psutil.cpu_times(percpu=True)]
        long_enough = now_ns - self._last_ns >= self.config.interval_ms * 500_000
        busy: list[float] = []
        # strict=False: a CPU taken offline mid-run shortens the list; compare what both have.
        for (b0, t0), (b1, t1) in zip(self._last, current, strict=False):
            dt = t1 - t0
            busy.append(min(100.0, max(0.0, 100.0 * (b1 - b0) / dt)) if dt > 0 else 0.0)
        self._last, self._last_ns = current, now_ns
        if long_enough and busy:
            rows += [(now_ns, f"cpu.{i}.busy_pct", value) for i, value in enumerate(busy)]
            rows.append((now_ns, "cpu_busy_pct", sum(busy) / len(busy)))
            for kind, cpus in self._hybrid.items():
                if values := [busy[c] for c in cpus if c < len(busy)]:
                    rows.append((now_ns, f"{kind}_cores_busy_pct", sum(values) / len(values)))
        for cpu, path in self._freq_files.items():
            if (khz := _read_number(path)) is not None:
                rows.append((now_ns, f"cpu.{cpu}.freq_mhz", khz / 1000.0))
        if self._process is not None and self._cpu is not None:
            try:
                cpu = self._cpu.read(now_ns)  # always read: it restarts its window
                if long_enough and cpu is not None:
                    rows += [(now_ns, "proc_cpu_pct", cpu.tree), (now_ns, "proc_main_cpu_pct", cpu.main)]
                    rows += [(now_ns, f"proc.{pid}.cpu_pct", pct) for pid, pct in cpu.children.items()]
                with self._process.oneshot():
                    rows.append((now_ns, "proc_rss_mb", self._process.memory_info().rss / MIB))
                    switches = self._process.num_ctx_switches().involuntary
                    if self._switches is None or long_enough:
                        if self._switches is not None:
                            t0, n0 = self._switches
                            rows.append((now_ns, "proc_preemptions_per_s", (switches - n0) / ((now_ns - t0) / 1e9)))
                        self._switches = (now_ns, switches)
            except psutil.Error:
                self._process = None  # the training process is gone: the sampler stops soon
        return rows

    def close(self) -> None:
        """Nothing held: psutil opens and closes its files per call."""


@dataclass(frozen=True)
class CpuShares:
    """% of one core over the interval: the whole tree, the main process alone, each live child."""

    tree: float
    main: float
    children: dict[int, float]  # pid -> its own CPU, for the children seen at both ends of the interval


class TreeCpu:
    """CPU % of a process, of its whole tree and of each child between two reads (see the module doc)."""

    def __init__(self, process: psutil.Process, now_ns: int) -> None:
        self.process = process
        self._last: tuple[int, float, float, dict[int, float]] | None = None  # (ns, tree s, main s, own s by pid)
        self._tree_high = 0.0
        self.read(now_ns)

    def seconds(self) -> tuple[float, float, dict[int, float]]:
        """(tree, main, each live descendant's own) CPU seconds so far. The tree is the main
        process's time and its reaped children's, plus every live descendant's own and reaped
        children's. A descendant gone between `children()` and its read is left out of this read;
        its parent's counters take it once it is waited for."""
        times = self.process.cpu_times()
        main = times.user + times.system
        tree = main + getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
        own: dict[int, float] = {}
        for child in self.process.children(recursive=True):
            try:
                t = child.cpu_times()
            except psutil.Error:
                continue
            own[child.pid] = t.user + t.system
            tree += own[child.pid] + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
        return tree, main, own

    def read(self, now_ns: int) -> CpuShares | None:
        """The shares since the previous read; None on the first. The tree's seconds only go up: a
        child that exited but is not waited for yet drops out of the sum until its parent's
        counters take it, and that dip is not a negative CPU time."""
        tree, main, own = self.seconds()
        last, self._last = self._last, (now_ns, tree, main, own)
        gained = max(0.0, tree - self._tree_high)
        self._tree_high = max(self._tree_high, tree)
        if last is None or now_ns <= last[0]:
            return None
        pct = 100.0 / ((now_ns - last[0]) / 1e9)
        children = {pid: pct * max(0.0, s - last[3][pid]) for pid, s in own.items() if pid in last[3]}
        return CpuShares(pct * gained, pct * max(0.0, main - last[2]), children)


def _read_number(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None
