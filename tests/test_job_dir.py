"""The job directory: registration under a lock, per-rank discovery, the job's status, and one time
axis (one host: perf_counter offsets; several: each host's wall-clock anchor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from job_runs import make_rank

from cnnprof.errors import UserError
from cnnprof.profiler.torchrun import _end_job, launcher_command
from cnnprof.traces.job import JOB_JSON, JobData, all_ranks_ended, is_job_dir

MS = 1_000_000


def test_ranks_are_found_and_the_job_is_complete(tmp_path: Path) -> None:
    for r in (0, 1):
        make_rank(tmp_path, r, 10.0, 20.0, t0_perf_ns=10**12 + r * 7 * MS)
    record = json.loads((tmp_path / JOB_JSON).read_text())
    assert is_job_dir(tmp_path) and all_ranks_ended(record)
    assert record["hosts"]["host-a"]["ranks"] == [0, 1]
    job = JobData(tmp_path)
    assert list(job.ranks) == [0, 1] and job.status == "complete" and job.notes == []
    assert job.offsets_ns == {0: 0, 1: 7 * MS}  # same host: the perf_counter difference


def test_ranks_on_two_hosts_meet_through_the_wall_clock(tmp_path: Path) -> None:
    make_rank(tmp_path, 0, 10.0, 20.0, host="a", t0_perf_ns=5 * 10**12, t0_unix_ns=1000 * 10**9)
    # host b's perf_counter is unrelated; it started 3 ms later by the wall clock
    make_rank(tmp_path, 1, 10.0, 20.0, host="b", t0_perf_ns=42, t0_unix_ns=1000 * 10**9 + 3 * MS)
    assert JobData(tmp_path).offsets_ns == {0: 0, 1: 3 * MS}


def test_a_failed_rank_fails_the_job(tmp_path: Path) -> None:
    make_rank(tmp_path, 0, 10.0, 20.0, status="interrupted")
    make_rank(tmp_path, 1, 10.0, 20.0, status="failed")
    assert JobData(tmp_path).status == "failed"


def test_a_rank_that_never_ended_fails_the_job_once_the_launcher_is_done(tmp_path: Path) -> None:
    make_rank(tmp_path, 0, 10.0, 20.0)
    make_rank(tmp_path, 1, 10.0, 20.0, status="running")
    assert JobData(tmp_path).status == "running"
    _end_job(tmp_path, -9)
    job = JobData(tmp_path)
    assert job.status == "failed"
    assert job.meta["ranks"]["1"]["status"] == "failed" and "killed" in job.meta["ranks"]["1"]["error"]


def test_a_missing_rank_is_noted(tmp_path: Path) -> None:
    make_rank(tmp_path, 0, 10.0, 20.0, world_size=3)
    job = JobData(tmp_path)
    assert job.status == "running" and job.notes == ["no run directory for rank(s) 1, 2"]


def test_not_a_job_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a cnnprof job directory"):
        JobData(tmp_path)


def test_the_launcher_runs_cnnprof_in_every_rank(tmp_path: Path) -> None:
    cmd = launcher_command(tmp_path, 2, 1, None, ["--no-report"], ["--", "train.py", "--lr", "1"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in cmd
    tail = cmd[cmd.index("--module") :]
    assert tail == [
        "--module",
        "cnnprof.cli",
        "profile",
        "--job-dir",
        str(tmp_path),
        "--no-report",
        "--",
        "train.py",
        "--lr",
        "1",
    ]
    multi = launcher_command(tmp_path, 4, 2, "node0:29500", [], ["-m", "pkg.train"])
    assert "--standalone" not in multi and multi[multi.index("--rdzv-endpoint") + 1] == "node0:29500"
