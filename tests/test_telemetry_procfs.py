"""procfs (psutil + sysfs) and rapl (powercap) sources against fake sysfs trees."""

from __future__ import annotations

import os
import time
from collections import namedtuple
from pathlib import Path

import pytest

from cnnprof.profiler.telemetry import procfs
from cnnprof.profiler.telemetry.base import SourceConfig
from cnnprof.profiler.telemetry.procfs import ProcfsSource, parse_cpu_list
from cnnprof.profiler.telemetry.rapl import RaplSource, energy_delta_uj

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


def cpu_times(*busy_idle: tuple[float, float]) -> list[CpuTimes]:
    """Per CPU (user seconds, idle seconds); guest time is inside user, as on Linux."""
    return [CpuTimes(u, 0, 0, i, 0, 0, 0, 0, u / 2, 0) for u, i in busy_idle]


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_parse_cpu_list() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpu_list("") == []


def test_busy_frequency_and_hybrid_cores_from_a_fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for cpu, khz in enumerate((4_800_000, 4_700_000, 3_600_000, 3_500_000)):
        write(tmp_path, f"devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq", f"{khz}\n")
    write(tmp_path, "devices/cpu_core/cpus", "0-1\n")
    write(tmp_path, "devices/cpu_atom/cpus", "2-3\n")
    reads = iter(
        [
            cpu_times((10, 10), (10, 10), (10, 10), (10, 10)),
            cpu_times((11, 10), (10.5, 10.5), (10, 11), (10.25, 10.75)),  # busy 100, 50, 0, 25 %
        ]
    )
    monkeypatch.setattr(procfs.psutil, "cpu_times", lambda percpu: next(reads))
    source = ProcfsSource(SourceConfig(interval_ms=100, target_pid=os.getpid()), sysfs_root=tmp_path)
    assert source.probe().ok
    assert {"cpu.*.freq_mhz", "p_cores_busy_pct", "e_cores_busy_pct", "proc_rss_mb"} <= set(source.metrics)
    rows = {m: v for _, m, v in source.read(time.perf_counter_ns() + 200_000_000)}
    assert [rows[f"cpu.{i}.busy_pct"] for i in range(4)] == [100.0, 50.0, 0.0, 25.0]
    assert rows["cpu_busy_pct"] == 43.75
    assert rows["p_cores_busy_pct"] == 75.0 and rows["e_cores_busy_pct"] == 12.5
    assert rows["cpu.0.freq_mhz"] == 4800.0 and rows["cpu.3.freq_mhz"] == 3500.0
    assert rows["proc_rss_mb"] > 10 and "proc_cpu_pct" in rows and "proc_main_cpu_pct" in rows


def test_no_busy_rows_from_a_window_shorter_than_half_an_interval(tmp_path: Path) -> None:
    source = ProcfsSource(SourceConfig(interval_ms=1000, target_pid=os.getpid()), sysfs_root=tmp_path)
    assert source.probe().ok
    metrics = {m for _, m, _ in source.read(time.perf_counter_ns())}
    assert "cpu_busy_pct" not in metrics and "proc_cpu_pct" not in metrics and "proc_rss_mb" in metrics
    assert "cpu.0.freq_mhz" not in metrics  # the fake tree is empty: no cpufreq, no hybrid rows
    assert not any(m.startswith(("p_cores", "e_cores")) for m in metrics)


def test_real_machine_busy_values_are_percentages() -> None:
    source = ProcfsSource(SourceConfig(interval_ms=10, target_pid=os.getpid()))
    assert source.probe().ok
    time.sleep(0.05)
    rows = source.read(time.perf_counter_ns())
    busy = [v for _, m, v in rows if m.endswith("busy_pct")]
    assert len(busy) == os.cpu_count() + 1 and all(0 <= v <= 100 for v in busy)


ProcTimes = namedtuple("ProcTimes", "user system children_user children_system")


class FakeProcess:
    """A psutil.Process whose CPU times and children the test sets."""

    pids = iter(range(50_000, 60_000))

    def __init__(self, user: float = 0.0, reaped: float = 0.0) -> None:
        self.user, self.reaped = user, reaped
        self.pid = next(FakeProcess.pids)
        self.kids: list[FakeProcess] = []

    def cpu_times(self) -> ProcTimes:
        return ProcTimes(self.user, 0.0, self.reaped, 0.0)

    def children(self, recursive: bool = False) -> list[FakeProcess]:
        assert recursive
        out = []
        for kid in self.kids:
            out += [kid, *kid.children(recursive=True)]
        return out


def test_tree_cpu_counts_the_workers_up_to_their_end() -> None:
    main, worker = FakeProcess(user=1.0), FakeProcess(user=0.5)
    main.kids = [worker]
    cpu = procfs.TreeCpu(main, 0)  # type: ignore[arg-type]
    main.user, worker.user = 1.2, 1.3
    shares = cpu.read(1_000_000_000)  # 0.2 s main + 0.8 s worker in 1 s
    assert (shares.tree, shares.main) == pytest.approx((100.0, 20.0))
    assert shares.children == pytest.approx({worker.pid: 80.0})
    # The worker ran 0.3 s more, exited and was joined: its time is in the parent's reaped counter.
    main.kids, main.user, main.reaped = [], 1.4, 1.6
    shares = cpu.read(2_000_000_000)
    assert (shares.tree, shares.main, shares.children) == (pytest.approx(50.0), pytest.approx(20.0), {})


def test_tree_cpu_never_goes_negative_while_a_child_awaits_its_join() -> None:
    main, worker = FakeProcess(user=1.0), FakeProcess(user=0.4)
    main.kids = [worker]
    cpu = procfs.TreeCpu(main, 0)  # type: ignore[arg-type]
    main.kids = []  # exited, not waited for yet: in neither sum
    assert cpu.read(1_000_000_000) == procfs.CpuShares(0.0, 0.0, {})
    main.reaped, main.user = 0.6, 1.1  # joined: 0.2 s more of the worker's, 0.1 s of the main's
    shares = cpu.read(2_000_000_000)
    assert (shares.tree, shares.main) == pytest.approx((30.0, 10.0))


def test_procfs_writes_each_live_childs_cpu() -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        source = ProcfsSource(SourceConfig(interval_ms=100, target_pid=os.getpid()))
        assert source.probe().ok and "proc.*.cpu_pct" in source.metrics
        rows = {m: v for _, m, v in source.read(time.perf_counter_ns() + 1_000_000_000)}
        assert rows[f"proc.{child.pid}.cpu_pct"] >= 0.0
        # the tree's share is the main's plus its children's, summed in another order: equal to
        # the last bits when the sleeping child adds nothing (0.99157870746184 vs ...254 seen)
        assert rows["proc_cpu_pct"] >= rows["proc_main_cpu_pct"] - 1e-9
    finally:
        child.kill()
        child.wait()


def test_tree_cpu_takes_grandchildren() -> None:
    main, worker, grandchild = FakeProcess(), FakeProcess(), FakeProcess()
    main.kids, worker.kids = [worker], [grandchild]
    cpu = procfs.TreeCpu(main, 0)  # type: ignore[arg-type]
    grandchild.user = 0.5
    shares = cpu.read(1_000_000_000)
    assert (shares.tree, shares.main) == pytest.approx((50.0, 0.0))
    assert shares.children == pytest.approx({worker.pid: 0.0, grandchild.pid: 50.0})


# -- rapl ------------------------------------------------------------------------------------
def rapl_tree(root: Path) -> Path:
    zones = root / "class/powercap"
    write(zones, "intel-rapl:0/name", "package-0\n")
    write(zones, "intel-rapl:0/energy_uj", "999000000\n")
    write(zones, "intel-rapl:0/max_energy_range_uj", "1000000000\n")
    write(zones, "intel-rapl:0:0/name", "dram\n")
    write(zones, "intel-rapl:0:0/energy_uj", "5000000\n")
    write(zones, "intel-rapl:0:0/max_energy_range_uj", "65532610987\n")
    return zones


def test_energy_delta_wraps() -> None:
    assert energy_delta_uj(100, 350, 1000) == 250
    assert energy_delta_uj(900, 50, 1000) == 150


def test_rapl_power_from_energy_differences_with_a_wrap(tmp_path: Path) -> None:
    zones = rapl_tree(tmp_path)
    source = RaplSource(SourceConfig(100, 1), sysfs_root=tmp_path)
    assert source.probe().ok
    assert set(source.metrics) == {"package-0.power_w", "package-0-dram.power_w", "window_ms"}
    t = time.perf_counter_ns()
    source.read(t)  # the window since probe(): not checked
    (zones / "intel-rapl:0/energy_uj").write_text("1000000\n")  # wrapped: 999 J -> 1000 J -> 1 J
    (zones / "intel-rapl:0:0/energy_uj").write_text("5500000\n")
    rows = {m: v for _, m, v in source.read(t + 500_000_000)}
    assert rows["package-0.power_w"] == pytest.approx(2.0 / 0.5)
    assert rows["package-0-dram.power_w"] == pytest.approx(0.5 / 0.5)
    assert rows["window_ms"] == pytest.approx(500.0)


def test_rapl_unreadable_counters_say_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rapl_tree(tmp_path)
    read_text = Path.read_text

    def root_only(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "energy_uj":  # as on Linux >= 5.10 for a non-root user
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", root_only)
    status = RaplSource(SourceConfig(100, 1), sysfs_root=tmp_path).probe()
    assert not status.ok and "root only" in status.reason and "chmod" in status.fix


def test_rapl_without_zones_is_unavailable(tmp_path: Path) -> None:
    status = RaplSource(SourceConfig(100, 1), sysfs_root=tmp_path).probe()
    assert not status.ok and "no RAPL zones" in status.reason
