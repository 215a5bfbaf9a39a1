"""How a profiled script ends, and what the run directory says of it: sys.exit codes and forks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import only_run_dir, read_meta

from cnnprof.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).parent / "scripts"


@pytest.mark.parametrize(("code", "status"), [("3", "failed"), ("0", "complete"), ("None", "complete")])
def test_sys_exit_code_sets_the_status(tmp_path: Path, code: str, status: str) -> None:
    script = tmp_path / "exits.py"
    script.write_text(f"import sys\nsys.exit({code})\n")
    out = tmp_path / "runs"
    rc = main(["profile", "--telemetry", "none", "--profiler", "none", "--no-report",
               "--out", str(out), "--", str(script)])
    assert rc == (3 if code == "3" else 0)
    meta = read_meta(only_run_dir(out))
    assert meta["status"] == status
    assert meta["script"]["exit_code"] == (3 if code == "3" else 0)
    if status == "failed":
        assert "code 3" in meta["error"]


def test_a_forked_child_leaves_the_parents_run_alone(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "cnnprof.cli", "profile", "--telemetry", "procfs", "--no-report", "--out", str(out)]
    done = subprocess.run([*cmd, "--", str(SCRIPTS / "forks.py")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "child exit status 0" in done.stderr
    run_dir = only_run_dir(out)
    assert done.stdout.splitlines().count(str(run_dir)) == 1  # the parent's closing line, once
    meta = read_meta(run_dir)
    assert meta["status"] == "complete"
    telemetry = meta["telemetry"]
    # the child did not stop the parent's sampler: it ran to the parent's end
    assert telemetry["sources"]["procfs"] == "ok" and telemetry["rows"] > 0 and telemetry["error"] is None
    assert meta["profiler"]["samples"] > 0


def test_the_stop_signal_handlers_last_only_as_long_as_the_command(tmp_path: Path) -> None:
    """In-process callers (the API, IPython, a test runner) keep their own SIGTERM and SIGHUP."""
    import signal

    script = tmp_path / "peek.py"
    script.write_text("import signal\nprint(signal.getsignal(signal.SIGHUP).__name__)\n")
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    out = tmp_path / "runs"
    args = ["profile", "--telemetry", "none", "--profiler", "none", "--no-report", "--out", str(out)]
    assert main([*args, "--", str(script)]) == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before


def test_profile_starts_the_telemetry_sampler_before_its_heavy_imports(tmp_path: Path) -> None:
    """The sampler's start-up (its own interpreter and probes) overlaps cnnprof's imports of
    pyarrow and the hooks, instead of adding to them (benchmarks/fixed_cost.py)."""
    script = tmp_path / "empty.py"
    script.write_text("")
    probe = f"""
import sys
import cnnprof.profiler.telemetry as telemetry
spawn = telemetry.spawn_sampler
seen = []
def spy(*args, **kwargs):
    seen.append(sorted({{"pyarrow", "cnnprof.profiler.session"}} & set(sys.modules)))
    return spawn(*args, **kwargs)
telemetry.spawn_sampler = spy
from cnnprof.cli import main
out = {str(tmp_path / "runs")!r}
code = main(["profile", "--telemetry", "procfs", "--no-report", "--out", out, "--", {str(script)!r}])
print("SEEN", seen, code)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert "SEEN [[]] 0" in done.stdout, done.stdout + done.stderr
    assert read_meta(only_run_dir(tmp_path / "runs"))["telemetry"]["sources"]["procfs"] == "ok"
