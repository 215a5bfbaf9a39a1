"""Reads a run directory for the other parts (reports, exports, diagnosis).

A run that was killed may lack files; a reader gives what is there and a note for each thing
that is missing or unreadable, so a report can still be built. Only a directory without a
readable `run.json` is an error.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from . import schema
from .record import RunDirError, RunRecord, read_record

__all__ = ["RunData", "RunDirError"]


class RunData:
    """One run directory: `record` (run.json) and its tables as pandas DataFrames."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: no such run directory (pass a folder written by `cnnprof run`)")
        self.record: RunRecord = read_record(self.path)
        if self.record.status != "complete":
            error = self.record.error
            self.notes.append(f"run status is {self.record.status!r}" + (f": {error}" if error else ""))

    @cached_property
    def meta(self) -> dict[str, Any]:
        """The record as run.json's dict (validated and upgraded), for code that reads keys."""
        return self.record.to_dict()

    def _table(self, name: str, what: str) -> pd.DataFrame:
        path = self.path / name
        if not path.exists():
            self.notes.append(f"no {what} ({name} is missing)")
            return pd.DataFrame()
        try:
            return pq.read_table(path).to_pandas()
        except Exception as exc:  # any corruption: keep going with what else is there
            self.notes.append(f"{name} is unreadable ({type(exc).__name__}: {exc}); {what} left out")
            return pd.DataFrame()

    @cached_property
    def spans(self) -> pd.DataFrame:
        return self._table(schema.SPANS, "phases")

    @cached_property
    def metrics(self) -> pd.DataFrame:
        return self._table(schema.METRICS, "per-epoch metrics")

    @cached_property
    def inference(self) -> pd.DataFrame:
        return self._table(schema.INFERENCE, "inference timings")

    @cached_property
    def telemetry(self) -> pd.DataFrame:
        return self._table(schema.TELEMETRY, "telemetry")

    @cached_property
    def samples(self) -> pd.DataFrame:
        return self._table(schema.SAMPLES, "stack samples")

    @cached_property
    def stacks(self) -> dict[str, Any]:
        """{"frames": [{"function", "file", "line", "library"}], "stacks": [[frame id, ...], ...]}."""
        path = self.path / schema.STACKS
        if not path.exists():
            return {"frames": [], "stacks": []}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.notes.append(f"{schema.STACKS} is unreadable ({exc}); stack samples left out")
            return {"frames": [], "stacks": []}

    @property
    def label(self) -> str:
        return self.record.label

    @property
    def duration_ns(self) -> int:
        spans = self.spans
        if not spans.empty:
            return int(spans["end_ns"].max())
        return int(self.record.duration_ns or 0)
