"""One run: owns the clock anchor, the run directory, the phase recorder and the observers
(telemetry sampler, stack profiler, sync hooks), and leaves a readable run directory however the
run ends: `complete`, `failed` (an exception, or a script's `sys.exit(n)` with n != 0) or
`interrupted` (Ctrl-C / SIGTERM / SIGHUP). While it runs, spans and stack samples go to stream files
every half second (profiler/flusher.py), so a run that is killed outright keeps all but the last
half second: traces/recovery.py marks such a run `killed` when it is read.

A child of `os.fork()` inherits the session; it must not end it (that would stop the parent's
telemetry sampler and write the parent's run directory), so only the process that entered the
session finishes it."""

from __future__ import annotations

import os
import signal
import statistics
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
from ..traces import schema
from ..traces.record import Host, RunRecord, Script, write_record
from ..traces.streams import SPANS_STREAM, LineStream
from ..traces.writer import non_finite_paths, write_table
from .flusher import StreamFlusher
from .host import host_info
from .rundir import make_run_dir
from .spans import SpanRecorder


class Observer(Protocol):
    """Something that watches a run: started after run.json exists, stopped before the tables
    are written. `stop` returns what goes into run.json under the observer's `name`."""

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
        self._span_stream: LineStream | None = None
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
        )
        self.write_meta()
        self._span_stream = LineStream(self.run_dir / SPANS_STREAM)
        stream = self._span_stream
        self.flusher.add(lambda: self.recorder.flush_to(stream))
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
        record.duration_ns = time.perf_counter_ns() - self.t0_perf_ns
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
        record.status = status
        record.error = error
        self.write_tables()
        record.summary = summarize(self.metric_rows, self.inference_rows)
        self.write_meta()
        if self._span_stream is not None:
            self._span_stream.close()
            self._span_stream.path.unlink(missing_ok=True)  # spans.parquet holds it all now

    # -- writing -----------------------------------------------------------------------------
    def write_meta(self) -> None:
        data = self.record.to_dict()
        for where in non_finite_paths(data):
            note = f"{where} was not a finite number (NaN or infinite); run.json has null there"
            if note not in self.record.losses:
                self.record.losses.append(note)
        write_record(self.run_dir, self.record)

    def write_tables(self) -> None:
        """Writes spans, metrics and inference as they are now (also called at each epoch's end,
        so a killed run keeps its finished epochs)."""
        write_table(self.run_dir / schema.SPANS, self.recorder.columns(self.t0_perf_ns), schema.SPANS_SCHEMA)
        write_table(self.run_dir / schema.METRICS, _columns(self.metric_rows), schema.METRICS_SCHEMA)
        write_table(self.run_dir / schema.INFERENCE, _columns(self.inference_rows), schema.INFERENCE_SCHEMA)

    # -- what the loops report ---------------------------------------------------------------
    def add_epoch_metrics(self, row: dict[str, Any]) -> None:
        self.metric_rows.append(row)

    def add_inference(self, kind: str, index: int, n_images: int, seconds: float, correct: int) -> None:
        self.inference_rows.append(
            {"kind": kind, "index": index, "n_images": n_images, "seconds": seconds, "correct": correct}
        )


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    return {name: [row.get(name) for row in rows] for name in names}


def summarize(metric_rows: list[dict[str, Any]], inference_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures of a run (the closing table and the report's cards)."""
    summary: dict[str, Any] = {"epochs_completed": len(metric_rows)}
    if metric_rows:
        epoch_s = [r["epoch_s"] for r in metric_rows]
        last = metric_rows[-1]
        summary.update(
            epoch_s_min=min(epoch_s),
            epoch_s_median=statistics.median(epoch_s),
            epoch_s_max=max(epoch_s),
            images_per_s_median=statistics.median(r["images_per_s"] for r in metric_rows),
            final_train_loss=last.get("train_loss"),
            final_train_acc=last.get("train_acc"),
            final_val_loss=last.get("val_loss"),
            final_val_acc=last.get("val_acc"),
        )
        energy_keys = sorted({k for r in metric_rows for k in r if k.startswith("energy_j.")})
        for key in energy_keys:
            summary[f"train_{key}"] = sum(r.get(key) or 0.0 for r in metric_rows)
    for kind, prefix in (("batched", "test"), ("single", "single")):
        rows = [r for r in inference_rows if r["kind"] == kind]
        if not rows:
            continue
        seconds = sum(r["seconds"] for r in rows)
        images = sum(r["n_images"] for r in rows)
        summary[f"{prefix}_images"] = images
        summary[f"{prefix}_accuracy"] = sum(r["correct"] for r in rows) / images
        if kind == "batched":
            summary["test_ms"] = seconds * 1e3
        else:
            summary["single_ms_per_image"] = seconds * 1e3 / images
    return summary
