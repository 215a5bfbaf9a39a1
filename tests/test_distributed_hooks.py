"""Rank detection from torchrun's variables and the collective hooks (gloo, one process, world size 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.distributed.distributed_c10d as c10d

from cnnprof.profiler.distributed import (
    COLLECTIVES,
    CollectiveHooks,
    SharedTelemetry,
    detect_rank,
    rank_observers,
)
from cnnprof.profiler.spans import SpanRecorder


def test_detect_rank_reads_torchrun_variables() -> None:
    assert detect_rank({}) is None
    assert detect_rank({"RANK": "0"}) is None  # no WORLD_SIZE: not a torchrun worker
    info = detect_rank(
        {
            "RANK": "3",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "4",
            "LOCAL_WORLD_SIZE": "2",
            "GROUP_RANK": "1",
            "TORCHELASTIC_RUN_ID": "abc",
            "MASTER_ADDR": "node0",
            "MASTER_PORT": "29500",
        }
    )
    assert info is not None
    assert (info.rank, info.local_rank, info.world_size, info.local_world_size, info.node_rank) == (3, 1, 4, 2, 1)
    assert (info.run_id, info.master) == ("abc", "node0:29500")


def test_only_local_rank_0_runs_the_telemetry_sampler() -> None:
    class Telemetry:
        name = "telemetry"

    tel = Telemetry()
    base = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
    first = rank_observers([tel], detect_rank({**base, "LOCAL_RANK": "0"}), None)
    second = rank_observers([tel], detect_rank({**base, "LOCAL_RANK": "1"}), None)
    assert first[0] is tel and [o.name for o in first] == ["telemetry", "collectives"]
    assert isinstance(second[0], SharedTelemetry)
    assert second[0].stop(None)["sources"] == {}  # type: ignore[arg-type]


@pytest.fixture
def group(tmp_path: Path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_collectives_become_spans_and_async_waits_syncs(group: None) -> None:
    originals = {name: getattr(dist, name) for name in COLLECTIVES}
    wait = dist.Work.wait
    rec = SpanRecorder()
    hooks = CollectiveHooks(rec, rank=0)
    hooks.install(dist)
    t = torch.ones(10)
    dist.all_reduce(t)
    work = dist.all_reduce(t, async_op=True)
    work.wait()
    dist.barrier()
    c10d.broadcast(t, 0)  # torch's own helpers look the functions up in distributed_c10d
    dist.all_gather([torch.zeros(10)], t)
    hooked = set(hooks.hooked)
    hooks.remove()
    dist.all_reduce(t)  # after remove: not recorded

    rows = [(r[0], r[1], (r[7] or {}).get("bytes"), (r[7] or {}).get("async_op")) for r in rec.rows]
    assert rows == [
        ("collective", "all_reduce", 40, False),
        ("collective", "all_reduce", 40, True),
        ("sync", "Work.wait", None, None),  # only the explicit wait: the synchronous call's is inside it
        ("collective", "barrier", 0, False),
        ("collective", "broadcast", 40, False),
        ("collective", "all_gather", 40, False),
    ]
    assert all(r[6] is not None and r[6].startswith(__file__) for r in rec.rows)
    assert all(r[7]["device"] == "cpu" and r[7]["rank"] == 0 for r in rec.rows)
    assert all(r[3] >= r[2] for r in rec.rows)
    # Every original is back, on both modules and on Work.
    assert {name: getattr(dist, name) for name in COLLECTIVES} == originals
    assert all(getattr(c10d, name) is originals[name] for name in COLLECTIVES if hasattr(c10d, name))
    assert dist.Work.wait is wait
    assert hooked >= {"all_reduce", "broadcast", "barrier", "all_gather", "reduce_scatter", "Work.wait"}
