"""A run whose process dies without ending it: what the streams keep, and what the reader makes of
them (traces/recovery.py)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import only_run_dir, read_meta

from cnnprof.cli import main
from cnnprof.profiler.session import RunSession, SessionOptions
from cnnprof.profiler.stacks import StackObserver
from cnnprof.traces import schema, streams
from cnnprof.traces.reader import RunData

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).parent / "scripts"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def spin_until_sampled(observer: StackObserver, n: int) -> None:
    sampler = observer._sampler
    assert sampler is not None
    deadline = time.monotonic() + 60
    while sampler.sample_count < n and time.monotonic() < deadline:
        sum(i * i for i in range(100))


def test_a_run_left_running_by_a_dead_process_is_recovered(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    observer = StackObserver("sampler", interval_ms=1.0)
    opts = SessionOptions(out_root=tmp_path / "runs", kind="script", label="spin", argv=[])
    with RunSession(opts, [observer]) as session:
        with session.recorder.span("phase", "work"):
            spin_until_sampled(observer, 20)
        session.flusher.flush()
        # A live run is read from its streams, and left alone.
        live = RunData(session.run_dir)
        assert live.meta["status"] == "running" and len(live.samples) >= 20 and list(live.spans["name"]) == ["work"]
        # What a SIGKILL now would leave: this directory as it is, its process gone.
        killed = shutil.copytree(session.run_dir, tmp_path / "killed")
    meta = read_meta(killed)
    meta["pid"] = dead_pid()
    (killed / schema.RUN_JSON).write_text(json.dumps(meta))

    run = RunData(killed)
    assert run.meta["status"] == "killed"
    assert run.meta["recovered"]["samples"] == len(run.samples) >= 20
    assert list(run.spans["name"]) == ["work"]
    ends = run.samples["t_ns"] + run.samples["dt_ns"]
    assert run.meta["duration_ns"] == max(ends.max(), run.spans["end_ns"].max())
    assert any("recovered run" in loss for loss in run.meta["losses"])
    # written back once: tables in, streams out, and the next reader finds a finished run
    assert read_meta(killed)["status"] == "killed"
    assert (killed / schema.SAMPLES).exists() and not (killed / streams.SAMPLES_STREAM).exists()
    assert len(RunData(killed).samples) == len(run.samples)

    assert main(["diagnose", str(killed)]) == 0
    out = capsys.readouterr().err  # the console writes to stderr
    assert "killed" in out and "recovered" in out


ALL_STREAMS = (streams.SAMPLES_STREAM, streams.SPANS_STREAM, streams.TELEMETRY_STREAM)


def _wait_for_streams(
    run_root: Path, process: subprocess.Popen[bytes], names: tuple[str, ...] = ALL_STREAMS
) -> Path:
    """The run directory once every stream has data (a generous cap: torch's import on a loaded
    machine)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, "the profiled run ended before it was killed"
        dirs = list(run_root.glob("*")) if run_root.exists() else []
        if dirs:
            sizes = [(dirs[0] / name).stat().st_size if (dirs[0] / name).exists() else 0 for name in names]
            if all(size > 200 for size in sizes):
                return dirs[0]
        time.sleep(0.1)
    raise AssertionError("the streams never filled")


def _profile(tmp_path: Path, script: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "cnnprof.cli", "profile", "--telemetry", "procfs"]
    cmd += ["--out", str(tmp_path / "runs")]
    cmd += ["--", str(SCRIPTS / script)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_at_a_random_moment_keeps_all_but_the_last_second(tmp_path: Path) -> None:
    process = _profile(tmp_path, "spin_torch.py")
    try:
        run_dir = _wait_for_streams(tmp_path / "runs", process)
        time.sleep(random.uniform(0.0, 1.5))
    finally:
        process.kill()
        process.wait()
    run = RunData(run_dir)
    assert run.meta["status"] == "killed"
    last = run.meta["duration_ns"]
    samples_end = (run.samples["t_ns"] + run.samples["dt_ns"]).max()
    # Each stream is flushed every half second: whichever was flushed last, the others are at most
    # one flush period (plus a late wake-up of the flusher) behind it. Relative to the data, not
    # to the kill, so a slow machine cannot fail it.
    ends = {"samples": samples_end, "spans": run.spans["end_ns"].max(), "telemetry": run.telemetry["t_ns"].max()}
    for what, t in ends.items():
        assert last - t < 1_000_000_000, what
    assert (run.spans["kind"] == "hook").any() and run.meta["telemetry"]["sources"]["procfs"] == "ok"


def test_sighup_ends_a_run_like_sigterm(tmp_path: Path) -> None:
    process = _profile(tmp_path, "spin.py")
    try:
        run_dir = _wait_for_streams(tmp_path / "runs", process, (streams.SAMPLES_STREAM,))
        process.send_signal(signal.SIGHUP)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert only_run_dir(tmp_path / "runs") == run_dir
    meta = read_meta(run_dir)
    assert meta["status"] == "interrupted" and "SIGHUP" in meta["error"]
    assert meta["pending"] and list(run_dir.glob("*.stream.*"))  # left to the first reader
    run = RunData(run_dir)
    assert run.record.status == "interrupted" and len(run.samples) > 0
    assert not list(run_dir.glob("*.stream.*")) and read_meta(run_dir)["pending"] == []
