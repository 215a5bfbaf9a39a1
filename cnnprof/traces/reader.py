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

from ..errors import UserError
from . import schema


class RunDirError(UserError):
    """The path is not a readable run directory."""


class RunData:
    """One run directory: `meta` (run.json) and its tables as pandas DataFrames."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: no such run directory (pass a folder written by `cnnprof run`)")
        meta_path = self.path / schema.RUN_JSON
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(
                f"{self.path}: no {schema.RUN_JSON}, so this is not a cnnprof run directory"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{meta_path}: unreadable ({exc}); the run directory is corrupt") from None
        if not isinstance(self.meta, dict) or "t0_perf_ns" not in self.meta:
            raise RunDirError(f"{meta_path}: not a cnnprof run.json (no t0_perf_ns)")
        version = self.meta.get("schema_version", 0)
        if version > schema.SCHEMA_VERSION:
            raise RunDirError(
                f"{self.path}: schema_version {version} is newer than this cnnprof reads "
                f"({schema.SCHEMA_VERSION}); upgrade cnnprof"
            )
        status = self.meta.get("status")
        if status != "complete":
            error = self.meta.get("error")
            self.notes.append(f"run status is {status!r}" + (f": {error}" if error else ""))

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
        cfg = self.meta.get("config", {})
        parts = [self.meta.get("backend", {}).get("name") or cfg.get("backend", "?")]
        if cfg.get("loop"):
            parts.append(cfg["loop"])
        if cfg.get("sync"):  # only when --sync overrode the loop's own policy
            parts.append(f"sync {cfg['sync']}")
        if cfg.get("dataset"):
            parts.append(cfg["dataset"])
        return " / ".join(str(p) for p in parts)

    @property
    def duration_ns(self) -> int:
        spans = self.spans
        if not spans.empty:
            return int(spans["end_ns"].max())
        return int(self.meta.get("duration_ns") or 0)


def load_run(path: str | Path) -> RunData:
    return RunData(path)
