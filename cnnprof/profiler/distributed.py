"""Distributed training (torchrun / DDP): which rank this process is, and the collectives as spans.

Rank detection reads the variables `torch.distributed.run` (torchrun) sets for every worker:
`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`, `GROUP_RANK` (the node), `TORCHELASTIC_RUN_ID`,
`TORCHELASTIC_RESTART_COUNT`, `MASTER_ADDR` / `MASTER_PORT`. Without `RANK` and `WORLD_SIZE` the process
is not a rank and `cnnprof profile` runs as a single process.

Collectives: while observed, the module functions `all_reduce`, `broadcast`, `barrier`, `all_gather`,
`all_gather_into_tensor`, `reduce_scatter`, `reduce_scatter_tensor` are replaced on `torch.distributed`
and on `torch.distributed.distributed_c10d` (where torch's own Python helpers look them up) and put back
afterwards. Each call is a span `("collective", <name>, start, end, epoch, batch, "file:line",
{"bytes", "async_op", "rank", "backend"})`; `bytes` is what this rank contributes (the input tensor or
list; 0 for a barrier). A synchronous call's span includes its wait. For `async_op=True` the span is the
launch and the wait is `Work.wait`, a span of kind `sync`, name `Work.wait`, device from the backend
(gloo: `cpu`, nccl: `cuda`). `Work.wait` calls made inside a hooked collective (torch's Python waits on
its own work for a synchronous call) are part of that collective and are not recorded again.

Not seen, and why:
* DDP's gradient buckets: `DistributedDataParallel`'s C++ `Reducer` all-reduces the buckets from the
  autograd engine through the C++ process group, never through a Python function (checked with torch
  2.13, gloo: a DDP backward calls neither `dist.all_reduce` nor `ProcessGroup.allreduce` from Python).
  Their time is inside `loss.backward()`: a fast rank waits for a slow one there, at the end of the
  backward pass. DDP's start-up `_broadcast_coalesced` (a C function) is not hooked either.
* On NCCL a collective's host-side span is the enqueue (the host does not wait for the GPU); its device
  time shows at the next host sync (`.item()`, `torch.cuda.synchronize`). On gloo (CPU) the span is the
  whole operation.
* Functions bound before the hooks went in (`from torch.distributed import all_reduce` run before
  cnnprof started) keep calling the original; `cnnprof profile` starts the hooks before the script runs.

The cost of one hooked collective is measured by benchmarks/collective_hook_cost.py.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from _thread import get_ident
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from .patching import Patcher, named
from .spans import SpanRecorder
from .sync import SyncHooks

if TYPE_CHECKING:
    from .session import RunSession

COLLECTIVE_KIND = "collective"
WAIT_NAME = "Work.wait"

# name -> (position, keyword) of the argument whose size is this rank's contribution.
COLLECTIVES: dict[str, tuple[int, str] | None] = {
    "all_reduce": (0, "tensor"),
    "broadcast": (0, "tensor"),
    "barrier": None,
    "all_gather": (1, "tensor"),
    "all_gather_into_tensor": (1, "input_tensor"),
    "reduce_scatter": (1, "input_list"),
    "reduce_scatter_tensor": (1, "input"),
}
BACKEND_DEVICES = {"gloo": "cpu", "nccl": "cuda", "mpi": "cpu", "ucc": "cuda", "xccl": "xpu"}

_now = time.perf_counter_ns


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits in a torchrun job."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    node_rank: int
    run_id: str
    restart_count: int
    master: str
    host: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def detect_rank(env: dict[str, str] | None = None) -> RankInfo | None:
    """The rank of this process from torchrun's variables, or None when it is not one."""
    env = dict(os.environ) if env is None else env
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None

    def num(name: str, default: int) -> int:
        try:
            return int(env.get(name, default))
        except ValueError:
            return default

    world = num("WORLD_SIZE", 1)
    return RankInfo(
        rank=num("RANK", 0),
        local_rank=num("LOCAL_RANK", 0),
        world_size=world,
        local_world_size=num("LOCAL_WORLD_SIZE", world),
        node_rank=num("GROUP_RANK", 0),
        run_id=env.get("TORCHELASTIC_RUN_ID", "none"),
        restart_count=num("TORCHELASTIC_RESTART_COUNT", 0),
        master=f"{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}",
        host=socket.gethostname(),
    )


def _payload_bytes(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return sum(_payload_bytes(v) for v in value)
    try:
        return int(value.numel()) * int(value.element_size())
    except (AttributeError, TypeError):
        return 0


class CollectiveHooks:
    """Installs and removes the collective hooks for one `SpanRecorder`."""

    def __init__(self, recorder: SpanRecorder, rank: int) -> None:
        self.recorder = recorder
        self.rank = rank
        self._busy: set[int] = set()  # threads inside a hooked collective right now
        self._patcher = Patcher()
        # The caller classification of the sync hooks: torch and cnnprof/profiler are not "the caller".
        self._classifier = SyncHooks(recorder)
        self._dist: ModuleType | None = None
        self._backend_device: str | None = None
        self._user_files: dict[str, bool] = {}  # file name -> user code (the caller), cached

    @property
    def hooked(self) -> list[str]:
        return sorted(set(self._patcher.hooked))

    @property
    def notes(self) -> list[str]:
        return self._patcher.notes + [f"{k}: {v}" for k, v in self._patcher.not_hooked.items()]

    def install(self, dist: ModuleType) -> None:
        self._dist = dist
        self._classifier._update_prefixes()
        c10d = sys.modules.get("torch.distributed.distributed_c10d")
        for name, payload in COLLECTIVES.items():
            original = getattr(dist, name, None)
            if original is None:
                continue
            wrapper = self._collective_wrapper(name, original, payload)
            for owner in (dist, c10d):
                if owner is not None and getattr(owner, name, None) is original:
                    self._patcher.patch(owner, name, name, lambda _n, _o, w=wrapper: w)
        work = getattr(dist, "Work", None)
        if work is not None:
            self._patcher.patch(work, "wait", WAIT_NAME, lambda _n, original: self._wait_wrapper(original))

    def remove(self) -> None:
        self._patcher.restore()

    def _device(self) -> str:
        """The default group's device, asked once it is known (a backend does not change)."""
        if self._backend_device is not None:
            return self._backend_device
        dist = self._dist
        try:
            backend = str(dist.get_backend()) if dist is not None and dist.is_initialized() else ""
        except Exception:  # a backend query must never fail the training
            backend = ""
        if not backend:
            return "unknown"
        self._backend_device = BACKEND_DEVICES.get(backend, backend)
        return self._backend_device

    def _caller(self, frame: FrameType | None) -> str | None:
        """The first frame outside torch and cnnprof/profiler (files classified once, cached)."""
        user = self._user_files
        while frame is not None:
            file = frame.f_code.co_filename
            is_user = user.get(file)
            if is_user is None:
                is_user = user[file] = self._classifier._classify(file) == 0
            if is_user:
                return f"{file}:{frame.f_lineno}"
            frame = frame.f_back
        return None

    def _collective_wrapper(self, name: str, original: Any, payload: tuple[int, str] | None) -> Any:
        rows = self.recorder.rows
        rec = self.recorder
        busy = self._busy
        hooks = self
        rank = self.rank
        getframe = sys._getframe
        pos, key = payload if payload is not None else (-1, "")

        def hooked(*args: Any, **kwargs: Any) -> Any:
            tid = get_ident()
            if tid in busy:  # a collective made by another one (torch's own helpers)
                return original(*args, **kwargs)
            busy.add(tid)
            try:
                start = _now()
                out = original(*args, **kwargs)
                end = _now()
            finally:
                busy.discard(tid)
            if pos < 0:
                size = 0
            else:
                value = args[pos] if len(args) > pos else kwargs.get(key)
                try:  # a tensor: the common case, without a type test
                    size = value.numel() * value.element_size()
                except AttributeError:
                    size = _payload_bytes(value)
            attrs = {
                "bytes": size,
                "async_op": bool(kwargs.get("async_op")) if kwargs else False,
                "rank": rank,
                "device": hooks._backend_device or hooks._device(),
            }
            rows.append((COLLECTIVE_KIND, name, start, end, rec.epoch, rec.batch, hooks._caller(getframe(1)), attrs))
            return out

        return named(hooked, original, name)

    def _wait_wrapper(self, original: Any) -> Any:
        rows = self.recorder.rows
        rec = self.recorder
        busy = self._busy
        hooks = self

        def hooked(work: Any, *args: Any, **kwargs: Any) -> Any:
            if get_ident() in busy:  # the wait of a synchronous collective: already in its span
                return original(work, *args, **kwargs)
            start = _now()
            out = original(work, *args, **kwargs)
            end = _now()
            attrs = {"device": hooks._device(), "rank": hooks.rank}
            rows.append(("sync", WAIT_NAME, start, end, rec.epoch, rec.batch, hooks._caller(sys._getframe(1)), attrs))
            return out

        return named(hooked, original, WAIT_NAME)


class CollectiveObserver:
    """The run observer of a rank: hooks the collectives at `start` (importing torch.distributed: a
    rank is a torch process anyway), restores them at `stop`, and says what it saw."""

    name = "collectives"

    def __init__(self, rank: RankInfo, job_dir: Path | None = None) -> None:
        self.rank = rank
        self.job_dir = job_dir
        self.hooks: CollectiveHooks | None = None
        self.error: str | None = None

    def start(self, session: RunSession) -> None:
        # The rank's GPU is its LOCAL_RANK (torchrun's one-device-per-rank convention): the report
        # ties it to that device's telemetry (`gpu<i>.` metrics of the host's sampler).
        record = session.record
        record.set_section(
            "distributed",
            {
                **self.rank.to_json(),
                "device_index": self.rank.local_rank,
                # one sampler per host: local rank 0's run directory holds the host's telemetry
                "telemetry_from_local_rank": 0,
                "job_dir": str(self.job_dir) if self.job_dir else None,
            },
        )
        if self.job_dir is not None:
            from ..traces.job import register_rank

            register_rank(
                self.job_dir, self.rank.to_json(), session.run_dir, record.t0_perf_ns, record.t0_unix_ns, record.pid
            )
        try:
            import torch.distributed as dist
        except ImportError as exc:
            self.error = f"torch.distributed is not importable ({exc}); collectives not recorded"
            return
        self.hooks = CollectiveHooks(session.recorder, self.rank.rank)
        self.hooks.install(dist)

    def stop(self, session: RunSession) -> dict[str, Any]:
        hooks = self.hooks
        if hooks is None:
            return {"hooked": [], "error": self.error}
        hooked = hooks.hooked
        hooks.remove()
        self.hooks = None
        calls: Counter[str] = Counter()
        seconds = 0.0
        for row in session.recorder.rows:
            if row[0] == COLLECTIVE_KIND or (row[0] == "sync" and row[1] == WAIT_NAME):
                calls[row[1]] += 1
                seconds += (row[3] - row[2]) / 1e9
        return {
            "hooked": hooked,
            "not_seen": [
                "DDP gradient buckets (C++ Reducer): their wait is inside loss.backward()",
                "_broadcast_coalesced (DDP start-up, a C function)",
            ],
            "calls": dict(calls),
            "seconds": seconds,
            "notes": hooks.notes,
        }


class SharedTelemetry:
    """Stands in for the telemetry observer on a rank whose host's local rank 0 runs the sampler:
    one sampler per host, its rows in that rank's run directory, on the same perf_counter clock."""

    name = "telemetry"

    def __init__(self, rank: RankInfo) -> None:
        self.rank = rank

    def start(self, session: RunSession) -> None:
        return None

    def stop(self, session: RunSession) -> dict[str, Any]:
        return {"sources": {}, "metrics": {}, "error": None}


def rank_observers(observers: list[Any], rank: RankInfo, job_dir: Path | None) -> list[Any]:
    """A rank's observers: those of a single run, the telemetry sampler only on the host's local rank 0
    (the others share it), and the collective hooks (which also register the rank in its job)."""
    out = [SharedTelemetry(rank) if o.name == "telemetry" and rank.local_rank != 0 else o for o in observers]
    return [*out, CollectiveObserver(rank, job_dir)]
