"""What machine a run ran on: OS, CPU model, P/E core counts, RAM (for run.json)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil


def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _count_cpulist(text: str) -> int:
    """Counts the CPUs of a Linux cpulist such as "0-7,16-23"."""
    n = 0
    for part in text.strip().split(","):
        if "-" in part:
            lo, hi = part.split("-")
            n += int(hi) - int(lo) + 1
        elif part:
            n += 1
    return n


def cpu_model() -> str:
    if sys.platform == "darwin":
        return _sysctl("machdep.cpu.brand_string") or platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def performance_core_counts(sysfs: Path = Path("/sys/devices")) -> tuple[int | None, int | None]:
    """(P cores, E cores) on Apple Silicon or Intel hybrid CPUs; (None, None) where there is no split."""
    if sys.platform == "darwin":
        p = _sysctl("hw.perflevel0.logicalcpu")
        e = _sysctl("hw.perflevel1.logicalcpu")
        return (int(p) if p else None, int(e) if e else None)
    try:
        p_text = (sysfs / "cpu_core" / "cpus").read_text()
        e_text = (sysfs / "cpu_atom" / "cpus").read_text()
    except OSError:
        return (None, None)
    return (_count_cpulist(p_text), _count_cpulist(e_text))


def host_info() -> dict[str, Any]:
    p_cores, e_cores = performance_core_counts()
    return {
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cpus": psutil.cpu_count(logical=False),
        "p_cores": p_cores,
        "e_cores": e_cores,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }
