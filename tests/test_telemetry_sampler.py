"""The sampler process end to end on this machine (procfs), its lifecycle (SIGTERM, SIGINT, the
parent's death), the parent API's errors, and the stream file format."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from cnnprof.errors import UserError
from cnnprof.profiler.telemetry import (
    SOURCE_NAMES,
    SourceStatus,
    available_sources,
    close_stream,
    read_stream,
    start_sampler,
)
from cnnprof.profiler.telemetry.launcher import STREAM_NAME
from cnnprof.profiler.telemetry.powermetrics import EXECUTABLE_ENV
from cnnprof.profiler.telemetry.stream import status_path
from cnnprof.traces.tables import telemetry_table

FIXTURES = Path(__file__).parent / "fixtures" / "powermetrics"


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def table(folder: Path, t0: int) -> pd.DataFrame:
    """telemetry.parquet as the run's first reader builds it from the stream (traces/tables.py)."""
    return telemetry_table(folder / STREAM_NAME, t0).to_pandas()


def median_interval_ms(frame: pd.DataFrame, metric: str) -> float:
    return float(frame[frame["metric"] == metric]["t_ns"].diff().dropna().median() / 1e6)


# -- end to end ----------------------------------------------------------------------------
@pytest.mark.parametrize("interval_ms", [100, 10])
def test_start_stop_streams_on_the_interval(tmp_path: Path, interval_ms: int) -> None:
    t0 = time.perf_counter_ns()
    handle = start_sampler(tmp_path, "procfs", interval_ms, t0)
    assert handle.sources == {"procfs": "ok"}  # start_sampler waited for the probe
    status = json.loads(status_path(tmp_path / STREAM_NAME).read_text())
    assert status["sources"]["procfs"]["ok"] and status["metrics"]["procfs"]["cpu_busy_pct"][0] == "%"
    time.sleep(1.5 if interval_ms == 100 else 0.6)
    result = handle.stop()
    assert result.error is None and result.sources == {"procfs": "ok"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [STREAM_NAME]  # status and log gone; the stream stays
    frame = table(tmp_path, t0)
    assert len(frame) == result.rows > 0
    assert set(frame["source"]) == {"procfs"}
    assert frame["t_ns"].min() > 0 and frame["t_ns"].max() < time.perf_counter_ns() - t0  # relative to t0
    assert frame["t_ns"].is_monotonic_increasing
    assert abs(median_interval_ms(frame, "cpu_busy_pct") - interval_ms) <= 0.1 * interval_ms
    assert result.metrics["procfs.cpu_busy_pct"] == {
        "unit": "%",
        "description": "mean busy % over all logical CPUs",
        "source": "procfs",
    }
    assert result.metrics["procfs.cpu.0.busy_pct"]["unit"] == "%"
    assert result.last_s["procfs"] == pytest.approx(frame["t_ns"].max() / 1e9)
    assert handle.stop() is result  # twice: the same answer


def test_auto_records_every_source_with_its_status(tmp_path: Path) -> None:
    handle = start_sampler(tmp_path, "auto", 100, time.perf_counter_ns())
    result = handle.stop()
    assert set(result.sources) == set(SOURCE_NAMES)
    assert result.sources["procfs"] == "ok"
    assert all(v == "ok" or v.startswith("unavailable: ") for v in result.sources.values())


def test_powermetrics_through_the_sampler_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in powermetrics of test_telemetry_powermetrics, named by CNNPROF_POWERMETRICS (which
    also lifts the macOS check) and reached through a stand-in sudo when not root."""
    from test_telemetry_powermetrics import FAKE_POWERMETRICS, install

    folder = tmp_path / "bin"
    folder.mkdir()
    recording = FIXTURES / "04_m4pro_Mac16-8_macos15.5-24F74_plist_stream5_gpuonly_i5000ms.plist"
    fake = install(folder, "pm", FAKE_POWERMETRICS.format(python=sys.executable, recording=str(recording)))
    install(folder, "sudo", '#!/bin/sh\n[ "$1" = "-n" ] && shift\nexec "$@"\n')
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(EXECUTABLE_ENV, str(fake))
    run_dir = tmp_path / "run"
    t0 = time.perf_counter_ns()
    handle = start_sampler(run_dir, "powermetrics,procfs", 100, t0)
    time.sleep(0.8)
    result = handle.stop()
    assert result.error is None and result.sources == {"powermetrics": "ok", "procfs": "ok"}
    frame = table(run_dir, t0)
    freqs = frame[frame["metric"] == "gpu_freq_mhz"]["value"].tolist()
    assert freqs[:3] == [426.525, 479.398, 867.616]
    assert result.metrics["powermetrics.gpu_power_w"] == {
        "unit": "W",
        "description": "GPU power, average over the window",
        "source": "powermetrics",
    }
    assert result.metrics["powermetrics.window_ms"]["unit"] == "ms"
    assert not any(p.info["name"] == "pm" for p in psutil.process_iter(["name"]))  # no orphan left


# -- lifecycle -------------------------------------------------------------------------------
PARENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cnnprof.profiler.telemetry import start_sampler
    handle = start_sampler(Path(sys.argv[1]), "procfs", 50, time.perf_counter_ns())
    print(handle.pid, flush=True)
    time.sleep(60)
    """
)


def test_sampler_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        sampler_pid = int(parent.stdout.readline())
        time.sleep(0.5)
        parent.kill()
        parent.wait()
        assert wait_until(lambda: gone(sampler_pid), 2.0), "sampler outlived its parent"
    finally:
        parent.kill()
        parent.wait()
    frame = read_stream(tmp_path / STREAM_NAME)  # left behind, still readable
    assert (frame["metric"] == "cpu_busy_pct").sum() >= 5
    result = close_stream(tmp_path, int(frame["t_ns"].min()))  # what the recovery does with it
    assert result.sources == {"procfs": "ok"} and result.rows == len(frame) and result.error is None
    assert len(table(tmp_path, 0)) == len(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == [STREAM_NAME]


def test_sampler_polls_a_parent_pid_that_is_not_its_parent(tmp_path: Path) -> None:
    """The macOS path (no PR_SET_PDEATHSIG): --parent-pid names a process that is not the parent."""
    watched = subprocess.Popen(["sleep", "30"])
    sampler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cnnprof.profiler.telemetry",
            "--out",
            str(tmp_path / "s.csv"),
            "--sources",
            "procfs",
            "--interval-ms",
            "1000",
            "--parent-pid",
            str(watched.pid),
        ],
    )
    try:
        assert wait_until(lambda: status_path(tmp_path / "s.csv").exists(), 10)
        watched.kill()
        watched.wait()  # reaped, so the pid is really gone
        assert sampler.wait(timeout=2) == 0
    finally:
        watched.kill()
        sampler.kill()
        sampler.wait()


def test_sigint_is_ignored_and_stop_is_clean(tmp_path: Path) -> None:
    handle = start_sampler(tmp_path, "procfs", 50, time.perf_counter_ns())
    os.kill(handle.pid, signal.SIGINT)
    time.sleep(0.3)
    assert not gone(handle.pid)
    result = handle.stop()
    assert result.error is None and result.rows > 0


def test_sampler_death_mid_run_is_reported_not_raised(tmp_path: Path) -> None:
    handle = start_sampler(tmp_path, "procfs", 50, time.perf_counter_ns())
    time.sleep(0.7)  # past the first flush
    os.kill(handle.pid, signal.SIGKILL)
    assert wait_until(lambda: gone(handle.pid), 2.0)
    result = handle.stop()
    assert result.error is not None and "killed by SIGKILL during the run" in result.error
    assert result.rows > 0 and len(table(tmp_path, 0)) == result.rows  # what it wrote is kept
    assert result.sources == {"procfs": "ok"}


def test_sampler_that_cannot_start_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    result = start_sampler(tmp_path, "procfs", 100, 0).stop()
    assert result.error is not None and "exited with code 1 during the run" in result.error
    assert result.sources == {"procfs": "unavailable: the sampler stopped before probing it"}


def test_none_starts_nothing(tmp_path: Path) -> None:
    handle = start_sampler(tmp_path, "none", 100, 0)
    assert handle.pid is None
    result = handle.stop()
    assert (result.sources, result.rows, result.error) == ({}, 0, None)
    assert not list(tmp_path.iterdir()) and table(tmp_path, 0).empty


@pytest.mark.parametrize(
    ("sources", "interval_ms", "message"),
    [
        (
            "procfs,gpu",
            100,
            "unknown telemetry source gpu: use auto, none, or a comma list of procfs, rapl, nvml",
        ),
        ("", 100, "unknown telemetry source"),
        ("procfs", 5, "out of range: pass 10..5000"),
        ("procfs", 6000, "out of range"),
    ],
)
def test_bad_requests_are_user_errors(tmp_path: Path, sources: str, interval_ms: int, message: str) -> None:
    with pytest.raises(UserError, match=message):
        start_sampler(tmp_path, sources, interval_ms, 0)
    assert not any(tmp_path.iterdir())


def test_available_sources_probes_all_in_process() -> None:
    statuses = available_sources()
    assert list(statuses) == list(SOURCE_NAMES)
    assert statuses["procfs"] == SourceStatus(True)
    assert all(s.ok or s.reason for s in statuses.values())


# -- the stream file -------------------------------------------------------------------------
def test_read_stream_drops_a_torn_last_line_and_malformed_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("t_ns,source,metric,value\n1,procfs,a,1.5\n2,procfs\n3,procfs,b,2.5\n4,procfs,c,3.")
    frame = read_stream(path)
    assert frame.to_dict("list") == {
        "t_ns": [1, 3],
        "source": ["procfs"] * 2,
        "metric": ["a", "b"],
        "value": [1.5, 2.5],
    }
    assert str(frame["t_ns"].dtype) == "int64"
    path.write_text("t_ns,source,metric,value\n1,procfs,a,x\n5,procfs,b,2\n")
    assert read_stream(path)["t_ns"].tolist() == [5]
    path.write_text("t_ns,sou")
    assert read_stream(path).empty
