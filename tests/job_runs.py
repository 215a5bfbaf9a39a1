"""Constructed job directories for the job rules and the job report: synchronised ranks whose
steps are `work` then a collective that ends when the slowest rank's work is done plus `comm`."""

from __future__ import annotations

import json
from pathlib import Path

from cnnprof.traces import schema
from cnnprof.traces.job import finish_rank, register_rank, update_job
from cnnprof.traces.writer import write_json, write_table

MS = 1_000_000
SCRIPT = "/work/train.py"
WORK_LINE = 40  # where every rank computes
EXTRA_LINE = 17  # where the slow rank does its extra work
REDUCE_LINE = 47  # the per-step all_reduce


def make_rank(
    job_dir: Path,
    rank: int,
    work_ms: float,
    period_ms: float,
    steps: int = 8,
    *,
    extra_ms: float = 0.0,
    ddp_wait_ms: float = 0.0,
    step_spans: bool = True,
    host: str = "host-a",
    t0_perf_ns: int = 10**12,
    t0_unix_ns: int = 1_700_000_000 * 10**9,
    status: str = "complete",
    world_size: int = 2,
    async_op: bool = False,
    nccl: bool = False,
) -> Path:
    """One rank: each step `work_ms` (+ `extra_ms` on the extra-work line), then an all_reduce
    until the step's end (`period_ms` after its start)."""
    run_dir = job_dir / f"rank-{rank}"
    run_dir.mkdir(parents=True)
    meta = {
        "schema_version": schema.SCHEMA_VERSION,
        "kind": "script",
        "status": status,
        "error": None if status == "complete" else "RuntimeError: boom",
        "t0_perf_ns": t0_perf_ns,
        "t0_unix_ns": t0_unix_ns,
        "duration_ns": int((steps + 1) * period_ms * MS),
        "config": {"target": SCRIPT},
        "distributed": {"rank": rank, "local_rank": rank, "world_size": world_size, "host": host},
    }
    write_json(run_dir / schema.RUN_JSON, meta)
    rank_info = {"rank": rank, "local_rank": rank, "world_size": world_size, "host": host, "run_id": "test"}
    register_rank(job_dir, rank_info, run_dir, t0_perf_ns, t0_unix_ns, None)
    cols: dict[str, list] = {k: [] for k in schema.SPANS_SCHEMA.names}
    t_samples: list[int] = []
    stack_ids: list[int] = []

    def span(kind: str, name: str, s: float, e: float, caller: str | None = None, attrs: dict | None = None) -> None:
        for k, v in zip(
            schema.SPANS_SCHEMA.names,
            (kind, name, int(s * MS), int(e * MS), None, None, caller, json.dumps(attrs) if attrs else None),
            strict=True,
        ):
            cols[k].append(v)

    for k in range(steps):
        start = 5.0 + k * period_ms
        end = start + period_ms
        if step_spans:
            span("step", "train", start, end)
            # DDP's all-reduce (unseen) holds the backward of a rank that waits for another
            span("hook", "backward", start + work_ms / 2, start + work_ms + ddp_wait_ms)
        busy_end = start + work_ms + extra_ms + ddp_wait_ms
        for t in list(range(int(start), int(start + work_ms))) + list(
            range(int(start + work_ms + extra_ms), int(busy_end))
        ):
            t_samples.append(t)
            stack_ids.append(0)
        for t in range(int(start + work_ms), int(start + work_ms + extra_ms)):
            t_samples.append(t)
            stack_ids.append(1)
        attrs = {"bytes": 4096, "async_op": async_op, "rank": rank, "device": "cpu"}
        if nccl:  # the all_reduce's host call only enqueues; the host waits in its next device sync
            span("collective", "all_reduce", busy_end, busy_end + 0.05, f"{SCRIPT}:{REDUCE_LINE}", attrs)
            span("sync", "Tensor.item", busy_end + 0.05, end, f"{SCRIPT}:{REDUCE_LINE + 1}", {"device": "cuda"})
        elif async_op:
            span("collective", "all_reduce", busy_end, busy_end + 0.05, f"{SCRIPT}:{REDUCE_LINE}", attrs)
            span(
                "sync",
                "Work.wait",
                busy_end + 0.05,
                end,
                f"{SCRIPT}:{REDUCE_LINE + 1}",
                {"device": "cpu", "rank": rank},
            )
        else:
            span("collective", "all_reduce", busy_end, end, f"{SCRIPT}:{REDUCE_LINE}", attrs)
    write_table(run_dir / schema.SPANS, cols, schema.SPANS_SCHEMA)
    write_table(
        run_dir / schema.SAMPLES,
        {"t_ns": [t * MS for t in t_samples], "dt_ns": [MS] * len(t_samples), "stack_id": stack_ids},
        schema.SAMPLES_SCHEMA,
    )
    frames = [
        {"function": "main", "file": SCRIPT, "line": WORK_LINE, "first_line": 30, "library": False},
        {"function": "extra_work", "file": SCRIPT, "line": EXTRA_LINE, "first_line": 16, "library": False},
        {"function": "main", "file": SCRIPT, "line": 44, "first_line": 30, "library": False},
    ]
    write_json(run_dir / schema.STACKS, {"frames": frames, "stacks": [[0], [2, 1]]})
    if status != "running":
        finish_rank(job_dir, rank, status, meta["error"])
    return run_dir


def make_job(
    job_dir: Path,
    work_ms: dict[int, float],
    comm_ms: float = 2.0,
    *,
    extra_ms: dict[int, float] | None = None,
    ddp_wait_ms: dict[int, float] | None = None,
    **kwargs,
) -> Path:
    """A synchronised job: every step lasts the slowest rank's work plus `comm_ms`."""
    extra_ms = extra_ms or {}
    ddp_wait_ms = ddp_wait_ms or {}
    period = max(w + extra_ms.get(r, 0.0) for r, w in work_ms.items()) + comm_ms
    for rank, work in work_ms.items():
        extra, wait = extra_ms.get(rank, 0.0), ddp_wait_ms.get(rank, 0.0)
        make_rank(job_dir, rank, work, period, extra_ms=extra, ddp_wait_ms=wait, world_size=len(work_ms), **kwargs)
    update_job(job_dir, lambda r: r.update(launcher="torchrun"))
    return job_dir
