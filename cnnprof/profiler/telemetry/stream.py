"""The sampler's stream file: CSV `t_ns,source,metric,value` (absolute perf_counter_ns), appended
as the run goes and flushed at least twice a second, plus its JSON status sidecar. Its reader,
`read_stream`, is traces.streams' (with the run's other streams).

The sampler process imports this module, so it must not import pandas or pyarrow at the top
(together ~1.5 s and ~50 MB per sampler).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ...traces.streams import TELEMETRY_COLUMNS as COLUMNS
from ...traces.streams import read_telemetry_stream as read_stream
from .base import Reading

__all__ = ["COLUMNS", "StreamWriter", "read_status", "read_stream", "write_status"]
FLUSH_PERIOD_NS = 500_000_000


def status_path(stream: Path) -> Path:
    return stream.with_name(stream.name + ".status.json")


def log_path(stream: Path) -> Path:
    return stream.with_name(stream.name + ".log")


def write_status(stream: Path, status: dict[str, Any]) -> None:
    """Atomic, so the parent never reads half of it. (traces.writer.write_json does the same but
    would pull pyarrow into the sampler.)"""
    path = status_path(stream)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(status, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_status(stream: Path) -> dict[str, Any] | None:
    try:
        return json.loads(status_path(stream).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class StreamWriter:
    """Appends readings; whole lines only reach the file, so at worst the last one is torn."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "w", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115 (closed in close())
        self._file.write(",".join(COLUMNS) + "\n")
        self._file.flush()
        self._flushed_ns = time.perf_counter_ns()
        self.rows = 0

    def write(self, source: str, readings: list[Reading]) -> None:
        self._file.writelines(f"{t},{source},{metric},{float(value)!r}\n" for t, metric, value in readings)
        self.rows += len(readings)

    def flush_if_due(self) -> None:
        now = time.perf_counter_ns()
        if now - self._flushed_ns >= FLUSH_PERIOD_NS:
            self._file.flush()
            self._flushed_ns = now

    def close(self) -> None:
        self._file.close()
