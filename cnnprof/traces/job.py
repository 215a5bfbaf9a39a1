"""The job directory of a distributed run: one run directory per rank and a job record.

    JOB/
      job.json        world size, launcher, hosts (the clock anchor of each), ranks (dir, status)
      rank-0/         a run directory as `cnnprof profile` writes it (run.json, spans, samples, ...)
      rank-1/
      ...

Every rank registers itself in job.json when it starts and records its outcome when it ends
(read-modify-write under an exclusive `flock` on `.job.lock`, so ranks starting together lose
nothing). The ranks' own run.json files are the truth about each rank: `JobData` discovers the
`rank-*` directories and derives the job's status from them, so a job stays readable when a rank
was killed before it could update job.json.

One time axis: the ranks of one host share `perf_counter_ns` (CLOCK_MONOTONIC), so their offsets
are differences of their `t0_perf_ns`. Across hosts each host's anchor (`t0_perf_ns`, `t0_unix_ns`
of the first rank that registered there) maps its clock to wall-clock time; the hosts' wall clocks
are trusted to agree (NTP: typically within a millisecond).
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from .reader import RunData, RunDirError
from .writer import write_json

JOB_JSON = "job.json"
LOCK = ".job.lock"
JOB_SCHEMA_VERSION = 1
_RANK_DIR = re.compile(r"^rank-(\d+)$")


def rank_dir_name(rank: int) -> str:
    return f"rank-{rank}"


def is_job_dir(path: str | Path) -> bool:
    return (Path(path) / JOB_JSON).is_file()


@contextmanager
def _locked(job_dir: Path) -> Iterator[None]:
    job_dir.mkdir(parents=True, exist_ok=True)
    with open(job_dir / LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(job_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((job_dir / JOB_JSON).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        data = {}
    return data if isinstance(data, dict) else {}


def update_job(job_dir: str | Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Applies `change` to job.json under the job's lock; returns the record as written."""
    job_dir = Path(job_dir)
    with _locked(job_dir):
        record = _read(job_dir)
        record.setdefault("kind", "job")
        record.setdefault("schema_version", JOB_SCHEMA_VERSION)
        record.setdefault("ranks", {})
        record.setdefault("hosts", {})
        change(record)
        write_json(job_dir / JOB_JSON, record)
    return record


def register_rank(
    job_dir: str | Path, rank: dict[str, Any], run_dir: Path, t0_perf_ns: int, t0_unix_ns: int, pid: int | None
) -> None:
    """A rank's start: its entry (torchrun's variables, its run directory, its pid) and, for the
    first rank of its host, the host's clock anchor (the rank's own t0 on both clocks)."""

    def change(record: dict[str, Any]) -> None:
        record.setdefault("world_size", rank["world_size"])
        record.setdefault("run_id", rank["run_id"])
        record.setdefault("launcher", "torchrun")
        host = record["hosts"].setdefault(
            rank["host"], {"t0_perf_ns": t0_perf_ns, "t0_unix_ns": t0_unix_ns, "ranks": []}
        )
        if rank["rank"] not in host["ranks"]:
            host["ranks"] = sorted([*host["ranks"], rank["rank"]])
        record["ranks"][str(rank["rank"])] = {
            **rank,
            "dir": run_dir.name,
            "pid": pid,
            "status": "running",
            "error": None,
        }

    update_job(job_dir, change)


def finish_rank(job_dir: str | Path, rank: int, status: str, error: str | None) -> dict[str, Any]:
    """A rank's end: its status in job.json. Returns the record (the caller may be the last rank)."""

    def change(record: dict[str, Any]) -> None:
        entry = record["ranks"].setdefault(str(rank), {"rank": rank, "dir": rank_dir_name(rank)})
        entry.update(status=status, error=error)

    return update_job(job_dir, change)


def all_ranks_ended(record: dict[str, Any]) -> bool:
    ranks = record.get("ranks", {})
    world = int(record.get("world_size") or 0)
    return len(ranks) >= world > 0 and all(r.get("status") != "running" for r in ranks.values())


class JobData:
    """A job directory: `meta` (job.json) and the ranks' runs (`ranks`: rank -> RunData)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        if not is_job_dir(self.path):
            raise RunDirError(f"{self.path}: no {JOB_JSON}, so this is not a cnnprof job directory")
        self.meta = _read(self.path)
        if self.meta.get("kind") != "job":
            raise RunDirError(f"{self.path / JOB_JSON}: unreadable or not a cnnprof job record")

    @cached_property
    def ranks(self) -> dict[int, RunData]:
        """Every rank directory that holds a readable run.json, by rank."""
        found: dict[int, RunData] = {}
        for child in sorted(self.path.iterdir()):
            match = _RANK_DIR.match(child.name)
            if not match or not child.is_dir():
                continue
            try:
                found[int(match.group(1))] = RunData(child)
            except RunDirError as exc:
                self.notes.append(f"{child.name} left out: {exc}")
        missing = sorted(set(range(self.world_size)) - set(found))
        if missing:
            self.notes.append(f"no run directory for rank(s) {', '.join(map(str, missing))}")
        return dict(sorted(found.items()))

    @property
    def world_size(self) -> int:
        return int(self.meta.get("world_size") or 0)

    @property
    def status(self) -> str:
        """failed if any rank failed or is missing once the job ended, interrupted if any was
        interrupted, running while a rank runs, else complete."""
        statuses = [run.record.status for run in self.ranks.values()]
        ended = self.meta.get("launcher_exit_code") is not None
        if "failed" in statuses:
            return "failed"
        if ended and (len(statuses) < self.world_size or "running" in statuses):
            return "failed"
        if self.meta.get("launcher_exit_code") not in (None, 0):
            return "failed"
        if "interrupted" in statuses:
            return "interrupted"
        if "running" in statuses or len(statuses) < self.world_size:
            return "running"
        return "complete"

    def host_of(self, rank: int) -> str | None:
        entry = self.meta.get("ranks", {}).get(str(rank)) or {}
        run = self.ranks.get(rank)
        dist = run.record.section("distributed") if run is not None else {}
        return entry.get("host") or dist.get("host")

    def _start_unix_ns(self, rank: int) -> int:
        record = self.ranks[rank].record
        anchor = self.meta.get("hosts", {}).get(self.host_of(rank) or "")
        if anchor:
            return int(anchor["t0_unix_ns"]) + record.t0_perf_ns - int(anchor["t0_perf_ns"])
        return record.t0_unix_ns

    @cached_property
    def offsets_ns(self) -> dict[int, int]:
        """Each rank's t0 on the job's axis (0 = the first rank's start): add it to the rank's times."""
        starts = {rank: self._start_unix_ns(rank) for rank in self.ranks}
        first = min(starts.values(), default=0)
        return {rank: start - first for rank, start in starts.items()}


def load_job(path: str | Path) -> JobData:
    return JobData(path)
