"""The sampler's stream file: CSV `t_ns,source,metric,value` (absolute perf_counter_ns), appended
as the run goes and flushed at least twice a second, plus its JSON status sidecar.

The sampler process imports this module, so it must not import pandas or pyarrow at the top
(together ~1.5 s and ~50 MB per sampler): `read_stream` imports pandas when called.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Reading

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("t_ns", "source", "metric", "value")
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


def read_stream(path: Path | str) -> pd.DataFrame:
    """A stream file as a DataFrame (t_ns int64, source, metric, value float64). Whatever follows
    the last newline (a line cut by a kill) is dropped, and so is any malformed row (a missing
    field, text where a number belongs)."""
    import pandas as pd

    data = Path(path).read_bytes()
    body = io.BytesIO(data[: data.rfind(b"\n") + 1] or (",".join(COLUMNS) + "\n").encode())
    options: dict[str, Any] = {"names": list(COLUMNS), "header": 0, "on_bad_lines": "skip"}
    try:
        # Typed parsing: 1 s per 3 M rows. Text that is no number makes it raise.
        frame = pd.read_csv(body, dtype={"t_ns": "int64", "value": "float64"}, **options)
    except ValueError:
        # Parsing as text and converting with coercion survives anything, at ~15x the cost.
        body.seek(0)
        frame = pd.read_csv(body, dtype=str, keep_default_na=False, **options)
        frame["t_ns"] = pd.to_numeric(frame["t_ns"], errors="coerce", dtype_backend="numpy_nullable")
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame = frame.dropna()
    frame = frame[(frame["source"] != "") & (frame["metric"] != "")]
    return frame.astype({"t_ns": "int64", "source": object, "metric": object}).reset_index(drop=True)
