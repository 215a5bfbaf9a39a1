"""One run: owns the clock anchor, the run directory, the phase recorder and the observers
(telemetry sampler, stack profiler, sync hooks), and leaves a readable run directory however the
run ends: `complete`, `failed` (an exception, or a script's `sys.exit(n)` with n != 0) or
`interrupted` (Ctrl-C / SIGTERM / SIGHUP). While it runs, spans, stack samples, per-epoch metrics and
inference timings go to stream files every half second (profiler/flusher.py), so a run that is
killed outright keeps all but the last half second: traces/recovery.py marks such a run `killed`
when it is read. The run's end stops the observers, completes the streams and writes run.json,
nothing more: the tables are built from the streams by the first reader (traces/tables.py), so
that the end costs no pandas or pyarrow import (benchmarks/fixed_cost.py).

A child of `os.fork()` inherits the session; it must not end it (that would stop the parent's
telemetry sampler and write the parent's run directory), so only the process that entered the
session finishes it."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from .. import __version__
from ..traces.record import Host, RunRecord, Script, write_record
from ..traces.streams import METRICS_STREAM, SPANS_STREAM, LineStream, rows_line
from ..traces.summary import summarize
from ..traces.tables import PENDING_TABLES
from ..traces.writer import non_finite_paths
from .flusher import StreamFlusher
from .host import host_info
from .rundir import make_run_dir
from .spans import SpanRecorder


class Observer(Protocol):
    """Something that watches a run: started after run.json exists, stopped before its final
    write. `stop` returns what goes into run.json under the observer's `name`; what it leaves to
    the first reader goes into `session.record.pending` (traces/tables.py)."""

    name: str

    def start(self, session: RunSession) -> None: ...

    def stop(self, session: RunSession) -> dict[str, Any]: ...


@dataclass
class SessionOptions:
    out_root: Path
    kind: str  # "train" (our loops) or "script" (cnnprof profile)
    label: str  # "<backend>-<dataset>" or the script's name: the run directory's suffix
    argv: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    script: Script | None = None  # what `cnnprof profile` runs
    run_dir: Path | None = None  # this directory, made already (a rank's in its job), not a new one


# The sessions of this process, for the fork handler below.
_SESSIONS: weakref.WeakSet[RunSession] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child inherits the parent's sessions: it must never stop their observers (the
    parent's telemetry process, its sampler) nor write their run directories."""
    for session in list(_SESSIONS):
        session.inherited = True
        session._started.clear()
        session.flusher.forget()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RunSession:
    """`with RunSession(opts, observers) as session:` around the work of one run.

    `inherited` is True in a child of `os.fork()`: the session is the parent's, and the child's
    `__exit__` leaves it alone."""

    def __init__(self, opts: SessionOptions, observers: list[Observer] | None = None) -> None:
        self.opts = opts
        self.observers = observers or []
        self.recorder = SpanRecorder()
        self.metric_rows: list[dict[str, Any]] = []
        self.inference_rows: list[dict[str, Any]] = []
        self.record = RunRecord(t0_perf_ns=0)
        self.run_dir = opts.run_dir or make_run_dir(opts.out_root, opts.label)
        self.t0_perf_ns = 0
        self.flusher = StreamFlusher()
        self._streams: list[LineStream] = []
        self._rows_flushed = (0, 0)
        self.stop_s: float | None = None  # how long the run's end took (the closing lines say it)
        self._started: list[Observer] = []
        self.inherited = False
        _SESSIONS.add(self)

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> RunSession:
        self.t0_perf_ns = time.perf_counter_ns()
        t0_unix_ns = time.time_ns()
        self.record = RunRecord(
            t0_perf_ns=self.t0_perf_ns,
            kind=self.opts.kind,
            cnnprof_version=__version__,
            argv=self.opts.argv,
            t0_unix_ns=t0_unix_ns,
            started=datetime.fromtimestamp(t0_unix_ns / 1e9).isoformat(timespec="seconds"),
            pid=os.getpid(),
            host=Host(**host_info()),
            config=self.opts.config,
            script=self.opts.script,
            pending=[PENDING_TABLES],
        )
        self.write_meta()
        spans, rows = LineStream(self.run_dir / SPANS_STREAM), LineStream(self.run_dir / METRICS_STREAM)
        self._streams = [spans, rows]
        self.flusher.add(lambda: self.recorder.flush_to(spans))
        self.flusher.add(lambda: self._flush_rows(rows))
        self.flusher.start()
        try:
            for observer in self.observers:
                observer.start(self)
                self._started.append(observer)
        except BaseException:
            self._finish("failed", "".join(traceback.format_exception_only(*sys.exc_info()[:2])).strip())
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self.inherited:
            return
        code = self.record.script.exit_code if self.record.script else None
        if exc_type is None and code:  # a profiled script's sys.exit(n), n != 0
            self._finish("failed", f"the script exited with code {code} (sys.exit)")
        elif exc_type is None:
            self._finish("complete", None)
        elif issubclass(exc_type, KeyboardInterrupt):
            self._finish("interrupted", "interrupted (Ctrl-C, SIGTERM or SIGHUP)")
        elif issubclass(exc_type, SystemExit) and exc is not None and exc.code in (0, None):
            self._finish("complete", None)  # a profiled script's sys.exit(0)
        else:
            self._finish("failed", "".join(traceback.format_exception_only(exc_type, exc)).strip())

    def _finish(self, status: str, error: str | None) -> None:
        if self.inherited:
            return
        # A SIGTERM now (torchrun stops the other ranks when one fails) must not cut the writing short.
        deferred = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN) if deferred else None
        try:
            self._write_outcome(status, error)
        finally:
            if deferred:  # None: a handler not set from Python, which SIG_DFL stands for
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    def _write_outcome(self, status: str, error: str | None) -> None:
        record = self.record
        stop_ns = time.perf_counter_ns()
        record.duration_ns = stop_ns - self.t0_perf_ns
        # Observers stop in reverse order; one that fails must not cost the others' data.
        for observer in reversed(self._started):
            try:
                record.set_section(observer.name, observer.stop(self))
            except Exception as exc:  # recorded, never raised: the run's own outcome matters more
                record.set_section(observer.name, {"error": f"{type(exc).__name__}: {exc}"})
        self._started.clear()
        self.flusher.stop()
        if self.flusher.errors:
            record.losses += [f"the stream files: {e}" for e in self.flusher.errors]
        for stream in self._streams:
            stream.close()
        record.status = status
        record.error = error
        record.summary = summarize(self.metric_rows, self.inference_rows)  # the epochs' energy comes on read
        record.ended_unix_ns = time.time_ns()
        self.write_meta()
        self.stop_s = (time.perf_counter_ns() - stop_ns) / 1e9

    # -- writing -----------------------------------------------------------------------------
    def write_meta(self) -> None:
        data = self.record.to_dict()
        for where in non_finite_paths(data):
            note = f"{where} was not a finite number (NaN or infinite); run.json has null there"
            if note not in self.record.losses:
                self.record.losses.append(note)
        write_record(self.run_dir, self.record)

    def _flush_rows(self, stream: LineStream) -> None:
        """Appends the metric and inference rows added since the last call (only ever appended)."""
        done_m, done_i = self._rows_flushed
        n_m, n_i = len(self.metric_rows), len(self.inference_rows)
        if (n_m, n_i) != (done_m, done_i):
            stream.append([rows_line(self.metric_rows[done_m:n_m], self.inference_rows[done_i:n_i])])
            self._rows_flushed = (n_m, n_i)

    # -- what the loops report ---------------------------------------------------------------
    def add_epoch_metrics(self, row: dict[str, Any]) -> None:
        self.metric_rows.append(row)

    def add_inference(self, kind: str, index: int, n_images: int, seconds: float, correct: int) -> None:
        self.inference_rows.append(
            {"kind": kind, "index": index, "n_images": n_images, "seconds": seconds, "correct": correct}
        )
