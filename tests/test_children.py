"""Child processes: DataLoader workers (fork) and a spawn Pool sampled through `cnnprof profile`,
their samples in the run directory with pid, role and start method."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import only_run_dir

from cnnprof.profiler.children import SampledTarget, role_of
from cnnprof.traces.processes import child_processes
from cnnprof.traces.reader import RunData

SCRIPTS = Path(__file__).parent / "scripts"


def profile(tmp_path: Path, script: str, *args: str) -> RunData:
    cmd = [sys.executable, "-m", "cnnprof.cli", "profile", "--telemetry", "none", "--no-report", "--out", str(tmp_path)]
    done = subprocess.run([*cmd, "--", str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return RunData(only_run_dir(tmp_path))


def functions_sampled(proc) -> set[str]:  # noqa: ANN001 (a ProcessSamples)
    frames = proc.stacks["frames"]
    used = {fid for sid in set(proc.samples["stack_id"]) for fid in proc.stacks["stacks"][sid]}
    return {frames[fid]["function"] for fid in used}


def test_dataloader_workers_are_sampled(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    run = profile(tmp_path, "dataloader_workers.py")
    section = run.record.section("processes")
    children = child_processes(run)
    assert sorted(c.role for c in children) == ["dataloader worker 0", "dataloader worker 1"]
    for child in children:
        assert child.info["ppid"] == section["main_pid"] and child.info["start_method"] == "fork"
        assert "transform" in functions_sampled(child)  # the per-sample work, in the worker
        # Its stacks start where the child does: the forking parent's frames are not the worker's.
        frames = child.stacks["frames"]
        assert {frames[stack[0]]["function"] for stack in child.stacks["stacks"]} == {"BaseProcess._bootstrap"}
        assert "_MultiProcessingDataLoaderIter.__init__" not in functions_sampled(child)
        assert 0 <= child.info["start_ns"] < child.info["end_ns"] <= run.record.duration_ns + 10**9
        t, dt = child.samples["t_ns"], child.samples["dt_ns"]
        assert t.iloc[0] >= child.info["start_ns"] and (t + dt).max() <= child.info["end_ns"]
        assert child.cpu_pct is not None and child.cpu_pct > 0


def test_spawn_pool_children_are_sampled_though_terminate_kills_them(tmp_path: Path) -> None:
    run = profile(tmp_path, "pool_children.py")
    children = child_processes(run)
    assert children and {c.role for c in children} == {"pool worker"}
    assert {c.info["start_method"] for c in children} == {"spawn"}
    assert any("crunch" in functions_sampled(c) for c in children)  # the task, in a fresh interpreter
    assert not list((run.path / "processes").glob("*.json"))  # every child file converted


def test_a_childs_stack_starts_at_its_own_bootstrap() -> None:
    from cnnprof.profiler.children import own_part

    root = "MainThread\x00<thread>\x001"
    parent = ["train\x00/home/u/train.py\x001\x01l9", "_launch\x00/usr/lib/python3/multiprocessing/popen_fork.py\x0060"]
    boot = "_bootstrap\x00/usr/lib/python3/multiprocessing/process.py\x00290\x01cBaseProcess\x01l314"
    own = [boot, "work\x00/home/u/train.py\x0020\x01l21"]
    assert own_part([root, *parent, boot, *parent, *own]) == (root, *own)  # a grandchild: its own bootstrap
    assert own_part([root, "spawn_main\x00/usr/lib/python3/multiprocessing/spawn.py\x00100", *own]) == (root, *own)
    assert own_part([root, *parent]) == (root, *parent)  # no bootstrap frame: left whole


def test_roles_from_the_target() -> None:
    from multiprocessing.pool import worker

    from torch.utils.data._utils.worker import _worker_loop

    assert role_of(_worker_loop, tuple(range(14))) == "dataloader worker 10"
    assert role_of(worker, ()) == "pool worker"
    assert role_of(print, ()) == "child"


def test_a_child_that_raises_still_leaves_its_samples(tmp_path: Path) -> None:
    def boom() -> None:
        raise ValueError("in the child")

    target = SampledTarget(boom, str(tmp_path), 0.001, "child", "fork")
    with pytest.raises(ValueError, match="in the child"):
        target()
    (path,) = tmp_path.glob("*.json")
    doc = json.loads(path.read_text())
    assert doc["role"] == "child" and doc["target"].endswith("boom") and doc["note"] == ""
