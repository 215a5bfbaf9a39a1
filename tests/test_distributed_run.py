"""Distributed jobs for real: a tiny DDP script (tests/scripts/ddp_train.py) on 2 gloo ranks on the
CPU, under `cnnprof profile --nproc-per-node 2` and under `torchrun ... -m cnnprof profile`.

Nothing here depends on the machine's speed: the slow rank sleeps 0.3 s more per step than the
others (whose whole step is a 0.05 s sleep and a tiny model), far past the rule's 20 % threshold;
the balanced job's steps are a 0.1 s sleep on both ranks, so noise would have to add 20 ms to the
median step of one rank only to fire. The assertions are on structure and ordering.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnprof.reports.diagnosis.job import diagnose_job
from cnnprof.traces.job import JobData

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"
ROOT = Path(__file__).resolve().parent.parent
OPTIONS = ["--telemetry", "none", "--no-report"]
STEPS = ["--steps", "6"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _cnnprof_launch(out: Path, *script_args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cnnprof", "profile", "--nproc-per-node", "2", *OPTIONS, "--out", str(out)]
    return subprocess.run(
        [*cmd, "--", str(SCRIPT), *script_args], env=_env(), capture_output=True, text=True, timeout=300
    )


def _torchrun(out: Path, *script_args: str) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd = [*launcher, "-m", "cnnprof", "profile", *OPTIONS, "--out", str(out), "--", str(SCRIPT), *script_args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)


def _job(out: Path) -> JobData:
    [job_dir] = [p for p in out.iterdir() if p.is_dir()]
    return JobData(job_dir)


def _layout(job: JobData) -> set[str]:
    return {str(p.relative_to(job.path)) for p in job.path.rglob("*") if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> JobData:
    out = tmp_path_factory.mktemp("imbalanced")
    done = _cnnprof_launch(out, *STEPS, "--step-sleep", "0.05", "--slow-rank", "1", "--extra", "0.3")
    assert done.returncode == 0, done.stderr[-3000:]
    return _job(out)


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> JobData:
    out = tmp_path_factory.mktemp("balanced")
    done = _torchrun(out, *STEPS, "--step-sleep", "0.1")
    assert done.returncode == 0, done.stderr[-3000:]
    return _job(out)


def test_the_slow_rank_is_named_with_its_line_and_rank_0_waits_in_all_reduce(imbalanced: JobData) -> None:
    assert imbalanced.status == "complete" and list(imbalanced.ranks) == [0, 1]
    diagnosis = diagnose_job(imbalanced)
    [finding] = [f for f in diagnosis.findings if f.id == "rank-imbalance"]
    assert finding.claim.startswith("Rank 1 is the slow rank")
    sleep_line = next(i for i, line in enumerate(SCRIPT.read_text().splitlines(), 1) if "time.sleep(seconds)" in line)
    assert (Path(finding.call_sites[0].file).name, finding.call_sites[0].line) == (SCRIPT.name, sleep_line)
    waits = next(e for e in finding.evidence if e.startswith("rank 0 waits"))
    assert "all_reduce" in waits and "ddp_train.py" in waits
    assert diagnosis.verdict_rank == 1
    # rank 0's all_reduce spans are long (waiting), rank 1's short; the rank-1 extra work sits before them
    spans0, spans1 = (imbalanced.ranks[r].spans for r in (0, 1))
    reduce0 = spans0[(spans0["kind"] == "collective") & (spans0["name"] == "all_reduce")]
    reduce1 = spans1[(spans1["kind"] == "collective") & (spans1["name"] == "all_reduce")]
    assert len(reduce0) == len(reduce1) == 6
    assert (reduce0["end_ns"] - reduce0["start_ns"]).median() > (reduce1["end_ns"] - reduce1["start_ns"]).median()


def test_the_balanced_job_has_no_rank_imbalance(balanced: JobData) -> None:
    assert balanced.status == "complete"
    assert "rank-imbalance" not in [f.id for f in diagnose_job(balanced).findings]


def test_both_ways_in_give_the_same_layout(imbalanced: JobData, balanced: JobData) -> None:
    assert _layout(imbalanced) == _layout(balanced)
    assert {
        "job.json",
        "rank-0/run.json",
        "rank-1/run.json",
        "rank-0/spans.parquet",
        "rank-1/spans.parquet",
    } <= _layout(balanced)
    assert imbalanced.meta["launcher"] == "cnnprof" and balanced.meta["launcher"] == "torchrun"
    for job in (imbalanced, balanced):
        assert job.world_size == 2 and len(job.meta["hosts"]) == 1
        [host] = job.meta["hosts"].values()
        assert host["ranks"] == [0, 1] and host["t0_perf_ns"] > 0
        # one telemetry process per host: rank 1 shares rank 0's
        dist = job.ranks[1].record.section("distributed")
        assert dist["telemetry_from_local_rank"] == 0 and dist["device_index"] == 1


def test_a_crash_on_one_rank_keeps_every_rank_and_fails_the_job(tmp_path: Path) -> None:
    done = _cnnprof_launch(tmp_path, *STEPS, "--step-sleep", "0.01", "--crash-rank", "1")
    assert done.returncode != 0
    job = _job(tmp_path)
    assert job.status == "failed"
    assert job.ranks[1].meta["status"] == "failed" and "crashed on purpose" in job.ranks[1].meta["error"]
    # rank 0 ended too (gloo lost its peer, or torchrun's SIGTERM) and wrote its spans
    assert job.ranks[0].meta["status"] in ("failed", "interrupted")
    for run in job.ranks.values():
        assert not run.spans.empty
