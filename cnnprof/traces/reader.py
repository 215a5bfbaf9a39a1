"""Reads a run directory for the other parts (reports, exports, diagnosis).

A run that was killed may lack files; a reader gives what is there and a note for each thing
that is missing or unreadable, so a report can still be built. Only a directory without a
readable `run.json` is an error.

A run that has ended left its tables to its first reader (run.json's `pending`): `RunData` builds
them from the streams then (traces/tables.py) and keeps them; a run killed without an end is
recovered the same way (traces/recovery.py). While a run is still going its streams are read in
place of the tables (traces/streams.py), since they hold everything up to the last flush.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from . import recovery, schema, streams, tables
from .losses import losses
from .processes import ProcessSamples, child_processes
from .record import RunDirError, RunRecord, read_record
from .writer import to_table

__all__ = ["RunData", "RunDirError"]


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with control characters written out (`\\x1b`): a code file or function name
    comes from the profiled program, and an ESC in it must not reach a terminal as a command."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _printable_frames(stacks: dict[str, Any]) -> dict[str, Any]:
    for frame in stacks["frames"]:
        for key in ("function", "file"):
            if isinstance(frame.get(key), str) and _CONTROL.search(frame[key]):
                frame[key] = printable(frame[key])
    return stacks


def _stacks_shape_error(stacks: Any) -> str | None:
    """Why a stacks.json does not have the shape the readers index into, or None."""
    if not isinstance(stacks, dict):
        return "not an object"
    frames, lists = stacks.get("frames"), stacks.get("stacks")
    if not isinstance(frames, list) or not isinstance(lists, list):
        return "no 'frames' and 'stacks' lists"
    keys = ("function", "file", "line", "library")
    if not all(isinstance(f, dict) and all(k in f for k in keys) for f in frames):
        return "a frame without function, file, line and library"
    n = len(frames)
    if not all(isinstance(s, list) and all(isinstance(i, int) and 0 <= i < n for i in s) for s in lists):
        return "a stack that is not a list of frame ids"
    return None


class RunData:
    """One run directory: `record` (run.json) and its tables as pandas DataFrames."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: no such run directory (pass a folder written by `cnnprof run`)")
        record = read_record(self.path)
        built: tables.Tables | None = None
        if recovery.is_abandoned(record) or tables.needs_build(record):
            built = recovery.recover(self.path) if recovery.is_abandoned(record) else tables.build(self.path)
            record = built.record if built is not None else read_record(self.path)  # None: built by another
        self._built = built
        self.record: RunRecord = record
        if record.status != "complete":
            self.notes.append(f"run status is {record.status!r}" + (f": {record.error}" if record.error else ""))
        self.losses = losses(record)
        self.notes += self.losses

    @cached_property
    def meta(self) -> dict[str, Any]:
        """The record as run.json's dict (validated and upgraded), for code that reads keys."""
        return self.record.to_dict()

    def _table(self, name: str, what: str) -> pd.DataFrame:
        frame = self._built.frame(name) if self._built is not None else None
        if frame is not None:
            return frame
        path = self.path / name
        if not path.exists():
            self.notes.append(f"no {what} ({name} is missing)")
            return pd.DataFrame()
        try:
            return pq.read_table(path).to_pandas()
        except Exception as exc:  # any corruption: keep going with what else is there
            self.notes.append(f"{name} is unreadable ({type(exc).__name__}: {exc}); {what} left out")
            return pd.DataFrame()

    def _stream_in_place(self, table: str, stream: str) -> bool:
        """Read `stream` in place of `table`: the table is neither built nor written (a run still
        going, or one in a directory that cannot be written) and the stream is there."""
        if self._built is not None and table in self._built.arrow:
            return False
        return not (self.path / table).exists() and (self.path / stream).exists()

    @cached_property
    def _sample_stream(self) -> tuple[dict[str, list[int]], dict[str, Any]] | None:
        if not self._stream_in_place(schema.SAMPLES, streams.SAMPLES_STREAM):
            return None
        return streams.read_sample_stream(self.path / streams.SAMPLES_STREAM, self.t0_perf_ns)

    @property
    def t0_perf_ns(self) -> int:
        return self.record.t0_perf_ns

    @cached_property
    def spans(self) -> pd.DataFrame:
        columns = None
        if self._stream_in_place(schema.SPANS, streams.SPANS_STREAM):
            columns = streams.read_span_stream(self.path / streams.SPANS_STREAM, self.t0_perf_ns)
        if columns is None:
            spans = self._table(schema.SPANS, "phases")
        else:
            spans = to_table(columns, schema.SPANS_SCHEMA).to_pandas()
        if "caller" in spans:
            spans["caller"] = [printable(c) if isinstance(c, str) else c for c in spans["caller"]]
        return spans

    @cached_property
    def metrics(self) -> pd.DataFrame:
        return (
            self._rows_in_place(0)
            if self._stream_in_place(schema.METRICS, streams.METRICS_STREAM)
            else (self._table(schema.METRICS, "per-epoch metrics"))
        )

    @cached_property
    def inference(self) -> pd.DataFrame:
        return (
            self._rows_in_place(1)
            if self._stream_in_place(schema.INFERENCE, streams.METRICS_STREAM)
            else (self._table(schema.INFERENCE, "inference timings"))
        )

    def _rows_in_place(self, which: int) -> pd.DataFrame:
        got = streams.read_rows_stream(self.path / streams.METRICS_STREAM) or ([], [])
        return pd.DataFrame(got[which])

    @cached_property
    def telemetry(self) -> pd.DataFrame:
        stream = self.path / streams.TELEMETRY_STREAM
        if self._stream_in_place(schema.TELEMETRY, streams.TELEMETRY_STREAM):
            frame = streams.read_telemetry_stream(stream)
            return frame.assign(t_ns=frame["t_ns"] - self.t0_perf_ns).sort_values("t_ns", kind="stable")
        return self._table(schema.TELEMETRY, "telemetry")

    @cached_property
    def samples(self) -> pd.DataFrame:
        return self._stack_samples[0]

    @cached_property
    def stacks(self) -> dict[str, Any]:
        """{"frames": [{"function", "file", "line", "library"}], "stacks": [[frame id, ...], ...]}."""
        return self._stack_samples[1]

    @cached_property
    def _stack_samples(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The samples and the stacks they index, checked together: both, or (noted) neither."""
        if self._sample_stream is not None:
            columns, stacks = self._sample_stream
            return to_table(columns, schema.SAMPLES_SCHEMA).to_pandas(), _printable_frames(stacks)
        none: tuple[pd.DataFrame, dict[str, Any]] = (pd.DataFrame(), {"frames": [], "stacks": []})
        samples = self._table(schema.SAMPLES, "stack samples")
        if self._built is not None and self._built.stacks is not None:
            return samples, _printable_frames(copy.deepcopy(self._built.stacks))
        path = self.path / schema.STACKS
        if not path.exists():
            if not samples.empty:
                self.notes.append(f"{schema.STACKS} is missing; stack samples left out")
            return none
        try:
            stacks = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.notes.append(f"{schema.STACKS} is unreadable ({exc}); stack samples left out")
            return none
        why = _stacks_shape_error(stacks)
        if why is None and not samples.empty and "stack_id" in samples:
            ids = samples["stack_id"]
            if ids.isna().any() or ids.min() < 0 or ids.max() >= len(stacks["stacks"]):
                why = f"{schema.SAMPLES} names stacks it does not have"
        if why is not None:
            self.notes.append(f"{schema.STACKS} has the wrong shape ({why}); stack samples left out")
            return none
        return samples, _printable_frames(stacks)

    @cached_property
    def children(self) -> list[ProcessSamples]:
        """The run's child processes (DataLoader and Pool workers, ...) with their stack samples,
        read once (a child whose files are unreadable is noted once)."""
        return child_processes(self)

    @property
    def label(self) -> str:
        return self.record.label

    @property
    def duration_ns(self) -> int:
        spans = self.spans
        if not spans.empty:
            return int(spans["end_ns"].max())
        return int(self.record.duration_ns or 0)
