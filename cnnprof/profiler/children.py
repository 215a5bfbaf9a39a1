"""Stack samples of the run's child processes: DataLoader workers, multiprocessing Pool workers and
other `multiprocessing` children each run cnnprof's signal sampler (sampler.py) and leave their
samples in the run directory, with their pid, parent pid, role and start method.

How: while the run is observed, `multiprocessing.process.BaseProcess.start` is wrapped. Before a
child starts, its target is replaced by `SampledTarget(target, ...)`, a picklable callable, so
it reaches the child whatever the start method: under fork the child runs it from the copied
memory; under spawn / forkserver it is unpickled there, which imports this module in the child.
In the child it resets the SIGALRM handler inherited from the parent's sampler (a fork keeps
handlers, not timers), starts a sampler of its own, runs the target, and in a `finally` writes
`processes/<pid>.json` (its stacks, from its own `BaseProcess._bootstrap` on, and sample end
times, perf_counter_ns: one clock for every process of the machine). It also wraps `start` in
the child, so grandchildren are sampled too.
At the end of the run, `ChildObserver.stop` lists the processes in run.json ("processes"); the
first reader turns each file into `processes/<pid>/samples.parquet` + `stacks.json` (the main
process's format; `convert`, called by traces/tables.py).

Roles: `dataloader worker N` (target torch.utils.data._utils.worker._worker_loop, N its worker
id), `pool worker` (multiprocessing.pool.worker, also ProcessPoolExecutor's `_process_worker`),
else `child` (with the target's name).

Not covered: children started before the run, or by `subprocess` / `os.fork` directly (no
multiprocessing object to wrap); Process subclasses that override `run()` instead of passing a
target. A child killed (SIGKILL, or SIGTERM where its SIGTERM is the default) leaves the file of
its last flush only: Pool workers, which Pool.terminate() (the end of a `with Pool` block) kills,
rewrite theirs after each task they finish (at most every 0.1 s, and less often when the
file is large); a SIGTERM handler that wrote on the way out was tried and left a spawn Pool hung
now and then. A forked child of `cnnprof run` / `profile` inherits their SIGTERM handler, which
raises KeyboardInterrupt and so exits through the writing `finally`; not a pool worker, which
gets the default SIGTERM back (see SampledTarget). DataLoader workers end
cleanly when their iterator is shut down. Threads other than each
process's main thread are not sampled, in the main process as in the children: a signal handler
runs in the main thread only, and walking another thread's frames from it (sys._current_frames)
would cost a lock and a dict per sample; the threads' time shows as the main thread waiting on
them (a `join`, a queue `get`).
"""

from __future__ import annotations

import json
import multiprocessing.process
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sampler import IDENT_SEP, FrameRecord, SamplerUnavailable, SignalSampler

if TYPE_CHECKING:
    from .session import RunSession

_WORKER_LOOP = ("torch.utils.data._utils.worker", "_worker_loop")
_POOL_WORKERS = {("multiprocessing.pool", "worker"), ("concurrent.futures.process", "_process_worker")}
_PROCESS_FILE = "multiprocessing/process.py"  # where BaseProcess._bootstrap, a child's first frame, lives
_WORKER_ID_ARG = 10  # _worker_loop(dataset_kind, dataset, ..., init_fn, worker_id, ...)
# A pool worker rewrites its samples file after a task at most this often (see SampledTarget._flush).
FLUSH_MIN_NS = 100_000_000
FLUSH_COST_RATIO = 20


def role_of(target: Any, args: tuple[Any, ...]) -> str:
    where = (getattr(target, "__module__", ""), getattr(target, "__name__", ""))
    if where == _WORKER_LOOP and len(args) > _WORKER_ID_ARG:
        return f"dataloader worker {args[_WORKER_ID_ARG]}"
    if where in _POOL_WORKERS:
        return "pool worker"
    return "child"


def _after_each_put(queue: Any, then: Any) -> None:
    """Calls `then()` after every `queue.put(...)` (the queue a pool worker sends results on)."""
    put = queue.put

    def put_then(*args: Any, **kwargs: Any) -> None:
        put(*args, **kwargs)
        then()

    queue.put = put_then


def own_part(stack: list[str]) -> tuple[str, ...]:
    """A child's stack from its own start: the thread's root, then from the innermost
    `BaseProcess._bootstrap` on. A forked child's stack still holds the frames of the parent that
    forked it (the training loop, `DataLoader.__iter__`, `Popen._launch`): the parent's, not the
    child's, and the same in every sample."""
    for i in range(len(stack) - 1, 0, -1):
        function, _, rest = stack[i].partition(IDENT_SEP)
        if function == "_bootstrap" and rest.split(IDENT_SEP, 1)[0].replace("\\", "/").endswith(_PROCESS_FILE):
            return (stack[0], *stack[i:])
    return tuple(stack)


class SampledTarget:
    """A child's target, wrapped: samples the child while the target runs (see module doc)."""

    def __init__(self, target: Any, folder: str, interval_s: float, role: str, start_method: str) -> None:
        self.target = target
        self.folder = folder
        self.interval_s = interval_s
        self.role = role
        self.start_method = start_method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a forked child's copy of the parent's handler
        if self.role == "pool worker":
            # Pool.terminate() (the end of a `with Pool` block) SIGTERMs its workers at any point,
            # inside the pool's queue code too: the parent's inherited handler raised
            # KeyboardInterrupt there and could leave the task queue's lock held, and the pool
            # then hung on the other workers (3 of 12 runs). A worker dies at once, as it would
            # without cnnprof; its samples are flushed after each task (`_flush`).
            for name in ("SIGTERM", "SIGHUP"):
                if hasattr(signal, name):
                    signal.signal(getattr(signal, name), signal.SIG_DFL)
        self._sampler = SignalSampler(self.interval_s)
        self._note = ""
        self._next_flush_ns = 0
        if self.role == "pool worker" and len(args) > 1 and hasattr(args[1], "put"):
            _after_each_put(args[1], self._flush)
        patch = StartPatch(self.folder, self.interval_s)  # grandchildren
        try:
            self._sampler.start(sys._getframe())
        except SamplerUnavailable as exc:
            self._note = str(exc)
        try:
            return self.target(*args, **kwargs)
        finally:
            patch.remove()
            self._sampler.stop()
            self._write(self._sampler, self._note)

    def _flush(self) -> None:
        """A pool worker's samples so far, after a task's result is sent: Pool.terminate() (the
        end of a `with Pool` block) kills its workers, which then never reach the `finally`.
        Each write is a whole file: the next one waits at least FLUSH_COST_RATIO times as long
        as this one took, which keeps the flushes under 1/FLUSH_COST_RATIO of the worker's time."""
        now = time.perf_counter_ns()
        if now < self._next_flush_ns:
            return
        self._write(self._sampler, self._note)
        took = time.perf_counter_ns() - now
        self._next_flush_ns = now + max(FLUSH_MIN_NS, FLUSH_COST_RATIO * took)

    def __getstate__(self) -> dict[str, Any]:  # what a spawned child receives: the target and where to write
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def _write(self, sampler: SignalSampler, note: str) -> None:
        stacks: dict[tuple[str, ...], int] = {}
        samples: list[list[int]] = []
        end = sampler.start_ns
        for stack, seconds in sampler.records():
            sid = stacks.setdefault(own_part(stack), len(stacks))
            end += round(seconds * 1e9)
            samples.append([sid, end])
        doc = {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "role": self.role,
            "target": getattr(self.target, "__qualname__", type(self.target).__name__),
            "start_method": self.start_method,
            "start_ns": sampler.start_ns,
            "end_ns": time.perf_counter_ns(),
            "cpu_s": time.process_time(),  # the child's CPU time since it was started (fork resets it)
            "interval_s": self.interval_s,
            "sampler_self_s": sampler.handler_ns / 1e9,
            "note": note,
            "stacks": [list(s) for s in stacks],
            "samples": samples,
        }
        path = Path(self.folder) / f"{os.getpid()}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(exist_ok=True)  # made by the first child only: a run without any has none
            tmp.write_text(json.dumps(doc), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # the run directory is gone (a deleted tmp dir): nothing to keep it for


class StartPatch:
    """Wraps BaseProcess.start so that each child started from here gets a SampledTarget."""

    def __init__(self, folder: str, interval_s: float) -> None:
        self.original = multiprocessing.process.BaseProcess.start
        original = self.original

        def start(process: Any) -> None:
            target = getattr(process, "_target", None)
            if target is not None and not isinstance(target, SampledTarget):
                method = getattr(process, "_start_method", None) or multiprocessing.get_start_method()
                role = role_of(target, tuple(getattr(process, "_args", ()) or ()))
                process._target = SampledTarget(target, folder, interval_s, role, str(method))
            original(process)

        start.__wrapped__ = original  # type: ignore[attr-defined]
        self.wrapper = start
        multiprocessing.process.BaseProcess.start = start  # type: ignore[method-assign]

    def remove(self) -> None:
        if multiprocessing.process.BaseProcess.start is self.wrapper:
            multiprocessing.process.BaseProcess.start = self.original  # type: ignore[method-assign]


def _child_files(run_dir: Path) -> Iterator[tuple[Path, dict[str, Any], list[FrameRecord]]]:
    """Each child's file with its document and its samples as frame records; a torn or foreign
    file is skipped (that process is left out)."""
    from ..traces import schema

    for path in sorted((run_dir / schema.PROCESSES).glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            stacks = doc["stacks"]
            records, previous = [], int(doc["start_ns"])
            for sid, end in doc["samples"]:
                records.append((stacks[sid], (end - previous) / 1e9))
                previous = end
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
        yield path, doc, records


def children_info(run_dir: Path, t0_ns: int) -> list[dict[str, Any]]:
    """The processes' list for run.json, from the children's files (plain Python: the run's end)."""
    out = []
    for _, doc, records in _child_files(run_dir):
        info = {k: doc[k] for k in ("pid", "ppid", "role", "target", "start_method", "interval_s", "note")}
        info.update(
            start_ns=int(doc["start_ns"]) - t0_ns,
            end_ns=int(doc["end_ns"]) - t0_ns,
            samples=len(records),
            sampled_s=sum(seconds for _, seconds in records),
            sampler_self_s=doc.get("sampler_self_s"),
            cpu_s=doc.get("cpu_s"),
        )
        out.append(info)
    return out


def convert(run_dir: Path, t0_ns: int) -> int:
    """Each child's file -> processes/<pid>/samples.parquet + stacks.json (the file is removed
    once they are written); how many were converted."""
    from ..traces import schema
    from ..traces.writer import write_json, write_table
    from .stacks import records_to_tables

    done = 0
    for path, doc, records in _child_files(run_dir):
        columns, stack_doc = records_to_tables(records, int(doc["start_ns"]), t0_ns)
        folder = run_dir / schema.PROCESSES / str(doc["pid"])
        folder.mkdir(exist_ok=True)
        write_table(folder / schema.SAMPLES, columns, schema.SAMPLES_SCHEMA)
        write_json(folder / schema.STACKS, stack_doc)
        path.unlink()
        done += 1
    return done


class ChildObserver:
    """Samples the run's multiprocessing children (session.py's Observer protocol)."""

    name = "processes"

    def __init__(self, interval_ms: float = 1.0) -> None:
        self.interval_s = interval_ms / 1e3
        self._patch: StartPatch | None = None

    def start(self, session: RunSession) -> None:
        from ..traces import schema

        self._patch = StartPatch(str(session.run_dir / schema.PROCESSES), self.interval_s)

    def stop(self, session: RunSession) -> dict[str, Any]:
        if self._patch is not None:
            self._patch.remove()
        children = children_info(session.run_dir, session.t0_perf_ns)
        return {"children": children, "main_pid": os.getpid(), "threads": "main thread of each process only"}
