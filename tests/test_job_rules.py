"""The job rules on constructed job directories (tests/job_runs.py): rank-imbalance and comm-bound,
each firing and not firing, and the job diagnosis's verdict rank."""

from __future__ import annotations

from pathlib import Path

from job_runs import EXTRA_LINE, REDUCE_LINE, SCRIPT, make_job

from cnnprof.reports.diagnosis.comm_bound import rule_comm_bound
from cnnprof.reports.diagnosis.job import diagnose_job
from cnnprof.reports.diagnosis.job_context import JobContext
from cnnprof.reports.diagnosis.rank_imbalance import rule_rank_imbalance
from cnnprof.traces.job import JobData


def _ctx(path: Path) -> JobContext:
    return JobContext(JobData(path))


def test_rank_imbalance_names_the_slow_rank_its_line_and_the_others_wait(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", {0: 30.0, 1: 30.0}, extra_ms={1: 120.0})
    [finding] = rule_rank_imbalance(_ctx(job))
    assert finding.id == "rank-imbalance"
    assert finding.claim.startswith("Rank 1 is the slow rank")
    # The slow rank's hottest line is its extra work, ahead of the work every rank does.
    assert (finding.call_sites[0].file, finding.call_sites[0].line) == (SCRIPT, EXTRA_LINE)
    assert finding.call_sites[0].seconds > finding.call_sites[1].seconds
    waits = next(e for e in finding.evidence if e.startswith("rank 0 waits"))
    assert "all_reduce" in waits and f"train.py:{REDUCE_LINE}" in waits
    # rank 0 waits for the extra work plus the all_reduce itself: 120 + 2 ms per step
    assert "waits 122.0 ms per step" in waits
    assert finding.severity == "high"
    assert "backward pass per rank" in " ".join(finding.evidence)  # from the step spans' split


def test_rank_imbalance_also_from_the_recurring_collective_without_step_spans(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", {0: 30.0, 1: 30.0, 2: 30.0}, extra_ms={2: 90.0}, step_spans=False)
    ctx = _ctx(job)
    assert all("recurring all_reduce" in v.step_source for v in ctx.ranks.values())
    [finding] = rule_rank_imbalance(ctx)
    assert finding.claim.startswith("Rank 2 is the slow rank")
    assert finding.call_sites[0].line == EXTRA_LINE


def test_rank_imbalance_sees_the_wait_inside_ddp_backward(tmp_path: Path) -> None:
    # Rank 0 waits for rank 1 inside its backward pass (DDP's C++ all-reduce), not in a collective span.
    job = make_job(tmp_path / "job", {0: 30.0, 1: 30.0}, extra_ms={1: 120.0}, ddp_wait_ms={0: 120.0})
    ctx = _ctx(job)
    assert ctx.ranks[0].median_comm_s < 0.005  # its collectives are short: the wait is elsewhere
    [finding] = rule_rank_imbalance(ctx)
    assert finding.claim.startswith("Rank 1 is the slow rank")
    waits = next(e for e in finding.evidence if e.startswith("rank 0 waits"))
    assert "120.0 ms inside its backward pass" in waits
    assert finding.call_sites[0].line == EXTRA_LINE


def test_rank_imbalance_on_nccl_where_the_others_wait_in_a_device_sync(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", {0: 30.0, 1: 30.0}, extra_ms={1: 120.0}, nccl=True)
    [finding] = rule_rank_imbalance(_ctx(job))
    assert finding.claim.startswith("Rank 1 is the slow rank")
    assert finding.call_sites[0].line == EXTRA_LINE
    balanced = make_job(tmp_path / "even", {0: 30.0, 1: 30.0}, nccl=True)
    assert rule_rank_imbalance(_ctx(balanced)) == []


def test_balanced_ranks_give_no_rank_imbalance(tmp_path: Path) -> None:
    # A 10 % difference in work is below the rule's threshold (20 % of the step).
    job = make_job(tmp_path / "job", {0: 50.0, 1: 50.0}, extra_ms={1: 5.0})
    assert rule_rank_imbalance(_ctx(job)) == []


def test_comm_bound_fires_when_even_the_last_rank_waits_long(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", {0: 20.0, 1: 20.0}, comm_ms=40.0)
    [finding] = rule_comm_bound(_ctx(job))
    assert finding.id == "comm-bound"
    assert "67%" in finding.claim  # 40 ms of a 60 ms step
    assert any("blocking the host: 40.0 ms" in e for e in finding.evidence)
    assert finding.call_sites[0].line == REDUCE_LINE


def test_comm_bound_sees_async_collectives_overlap(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", {0: 20.0, 1: 20.0}, comm_ms=40.0, async_op=True)
    [finding] = rule_comm_bound(_ctx(job))
    overlap = next(e for e in finding.evidence if e.startswith("blocking the host"))
    assert "asynchronous work overlapping compute: 0.0 ms" in overlap  # waited at once: no overlap


def test_comm_bound_stays_quiet_for_cheap_communication_and_for_pure_imbalance(tmp_path: Path) -> None:
    cheap = make_job(tmp_path / "cheap", {0: 50.0, 1: 50.0}, comm_ms=2.0)
    assert rule_comm_bound(_ctx(cheap)) == []
    # rank 0 waits 80 % of the step, but for rank 1: imbalance, not communication.
    skewed = make_job(tmp_path / "skewed", {0: 20.0, 1: 20.0}, comm_ms=2.0, extra_ms={1: 100.0})
    assert rule_comm_bound(_ctx(skewed)) == []
    assert [f.id for f in diagnose_job(JobData(skewed)).findings] == ["rank-imbalance"]


def test_job_verdict_comes_from_the_slow_rank_else_rank_0(tmp_path: Path) -> None:
    skewed = diagnose_job(JobData(make_job(tmp_path / "a", {0: 20.0, 1: 20.0}, extra_ms={1: 100.0})))
    assert skewed.verdict_rank == 1 and "slow rank" in skewed.verdict_why
    assert set(skewed.per_rank) == {0, 1}
    even = diagnose_job(JobData(make_job(tmp_path / "b", {0: 20.0, 1: 20.0})))
    assert even.verdict_rank == 0
    assert even.to_json()["verdict"]["rank"] == 0
