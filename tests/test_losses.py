"""Every loss is said where the user looks: the closing lines, `cnnprof diagnose`, the report."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from cnnprof.cli import main
from cnnprof.profiler.observers import TelemetryObserver
from cnnprof.profiler.session import RunSession, SessionOptions
from cnnprof.reports.explain import explain
from cnnprof.traces import schema
from cnnprof.traces.losses import losses
from cnnprof.traces.reader import RunData
from cnnprof.traces.record import RunRecord, Telemetry


def test_losses_name_each_thing_that_is_missing() -> None:
    record = RunRecord(
        t0_perf_ns=1,
        duration_ns=10_000_000_000,
        telemetry=Telemetry(
            interval_ms=100, error="the telemetry sampler exited with code 1 during the run",
            last_s={"procfs": 9.9, "nvml": 1.8},
        ),
        profiler={"sampler_overruns": 1234, "errors": ["samples: OSError: disk full"]},
        losses=["recovered run: ..."],
    )
    found = losses(record)
    assert found[0] == "recovered run: ..."
    assert any("exited with code 1" in x for x in found)
    assert any("nvml's readings stop at 1.8 s of a 10.0 s run" in x for x in found)
    assert not any("procfs" in x for x in found)  # 0.1 s before the end: one period late, not stalled
    assert any("1,234 timer signals" in x for x in found)
    assert any("disk full" in x for x in found)
    assert losses(RunRecord(t0_perf_ns=1)) == []


def test_a_telemetry_sampler_killed_mid_run_is_said_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    observer = TelemetryObserver("procfs", 50)
    opts = SessionOptions(out_root=tmp_path / "runs", kind="script", label="lossy", argv=[])
    with RunSession(opts, [observer]) as session:
        assert observer.handle is not None and observer.handle.pid is not None
        os.kill(observer.handle.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while observer.handle._process.poll() is None and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.01)
    said = "telemetry: the telemetry sampler was killed by SIGKILL during the run"
    run = RunData(session.run_dir)
    assert any(loss.startswith(said) for loss in run.losses)

    explain(session.run_dir, show=True, write_report=True)
    assert f"lost: {said}" in capsys.readouterr().err
    html = (session.run_dir / schema.REPORT).read_text(encoding="utf-8")
    missing = html[html.index("What is missing") :]
    assert "killed by SIGKILL during the run" in missing

    assert main(["diagnose", str(session.run_dir)]) == 0
    assert f"note: {said}" in capsys.readouterr().err
