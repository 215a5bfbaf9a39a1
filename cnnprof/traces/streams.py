"""The run's stream files: what a run writes while it goes, so that a run that dies (SIGKILL,
`os._exit`, power loss) loses at most the last flush, and a live view can read a running run.

Four append-only files in the run directory. The run's end leaves them as they are (it writes
run.json only, so that it is quick: benchmarks/fixed_cost.py); the first reader builds the tables
from them and removes them (traces/tables.py):

* `telemetry.stream.csv`: `t_ns,source,metric,value`, one reading a line (the telemetry sampler
  process writes it; profiler/telemetry/stream.py).
* `spans.stream.jsonl`: one JSON line per flush, `{"spans": [[kind, name, start_ns, end_ns,
  epoch, batch, caller, attrs], ...]}`, the spans recorded since the previous flush.
* `samples.stream.jsonl`: a first line `{"start_ns": N}` (the sampler's start: the first sample
  begins there), then one line per flush, `{"frames": [[function, file, line, first_line,
  library], ...], "stacks": [[frame id, ...], ...], "end_ns": [...], "stack": [...]}`: the frames
  and stacks first seen since the previous flush (ids continue the earlier lines' numbering) and
  each sample's end time and stack id.
* `metrics.stream.jsonl`: one JSON line per flush, `{"metrics": [row, ...], "inference": [row,
  ...]}`, the per-epoch metrics and inference timings added since the previous flush (the rows of
  metrics.parquet and inference.parquet).

Times in the streams are absolute `perf_counter_ns`; the readers return them relative to t0, as
in the tables. A line cut by a kill (no newline after it) and any line that does not parse are
skipped, so a reader never fails on a stream.

This module is imported by the telemetry sampler process: no pandas or pyarrow at the top.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

TELEMETRY_STREAM = "telemetry.stream.csv"
SPANS_STREAM = "spans.stream.jsonl"
SAMPLES_STREAM = "samples.stream.jsonl"
METRICS_STREAM = "metrics.stream.jsonl"
STREAMS = (TELEMETRY_STREAM, SPANS_STREAM, SAMPLES_STREAM, METRICS_STREAM)

TELEMETRY_COLUMNS = ("t_ns", "source", "metric", "value")

# A span row while recording: absolute perf_counter_ns; attrs as a dict or None.
SpanRow = tuple[str, str, int, int, int | None, int | None, str | None, dict[str, Any] | None]


class LineStream:
    """An append-only file of whole lines. `append` writes one flush's lines and flushes them to
    the OS, so a kill of this process loses nothing that `append` returned from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def append(self, lines: Iterable[str]) -> None:
        if self._file is None:
            return
        self._file.write("".join(f"{line}\n" for line in lines))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _complete_lines(path: Path) -> bytes:
    """The file up to its last newline (b"" if it does not exist)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b""
    return data[: data.rfind(b"\n") + 1]


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in _complete_lines(path).splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


# -- spans ---------------------------------------------------------------------------------------
def span_line(rows: list[SpanRow]) -> str:
    return json.dumps({"spans": rows}, default=str, separators=(",", ":"))


def spans_to_columns(rows: Iterable[SpanRow], t0_ns: int) -> dict[str, list[Any]]:
    """Span rows -> the columns of spans.parquet (times relative to `t0_ns`, sorted by start)."""
    ordered = sorted(rows, key=lambda r: r[2])
    return {
        "kind": [r[0] for r in ordered],
        "name": [r[1] for r in ordered],
        "start_ns": [r[2] - t0_ns for r in ordered],
        "end_ns": [r[3] - t0_ns for r in ordered],
        "epoch": [r[4] for r in ordered],
        "batch": [r[5] for r in ordered],
        "caller": [r[6] for r in ordered],
        "attrs": [json.dumps(r[7]) if r[7] else None for r in ordered],
    }


def _valid_span(row: Any) -> bool:
    return (
        isinstance(row, list)
        and len(row) == 8
        and isinstance(row[0], str)
        and isinstance(row[1], str)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in row[2:4])
        and all(v is None or isinstance(v, int) for v in row[4:6])
        and (row[6] is None or isinstance(row[6], str))
        and (row[7] is None or isinstance(row[7], dict))
    )


def read_span_rows(path: Path) -> list[SpanRow] | None:
    """spans.stream.jsonl's rows as recorded (absolute times), or None if there is no stream."""
    if not path.exists():
        return None
    rows: list[Any] = []
    for obj in _json_lines(path):
        spans = obj.get("spans")
        if isinstance(spans, list):
            rows += [tuple(r) for r in spans if _valid_span(r)]
    return rows


def read_span_stream(path: Path, t0_ns: int) -> dict[str, list[Any]] | None:
    """spans.stream.jsonl as spans.parquet's columns, or None if there is no stream."""
    rows = read_span_rows(path)
    return None if rows is None else spans_to_columns(rows, t0_ns)


# -- per-epoch metrics and inference timings ---------------------------------------------------------
def rows_line(metrics: list[dict[str, Any]], inference: list[dict[str, Any]]) -> str:
    return json.dumps({"metrics": metrics, "inference": inference}, default=str, separators=(",", ":"))


def read_rows_stream(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """metrics.stream.jsonl as (metric rows, inference rows), or None if there is no stream."""
    if not path.exists():
        return None
    metrics: list[dict[str, Any]] = []
    inference: list[dict[str, Any]] = []
    for obj in _json_lines(path):
        for key, rows in (("metrics", metrics), ("inference", inference)):
            got = obj.get(key)
            if isinstance(got, list):
                rows += [r for r in got if isinstance(r, dict)]
    return metrics, inference


# -- stack samples ---------------------------------------------------------------------------------
def sample_header_line(start_ns: int, session: dict[str, Any] | None = None) -> str:
    """The first line; `session` is what a pyinstrument session file needs besides the samples
    (start_time, start_call_stack, interval_s, sys_path, sys_prefixes; profiler/stacks.py)."""
    return json.dumps({"start_ns": start_ns, **({"session": session} if session else {})})


def read_sample_header(path: Path) -> dict[str, Any] | None:
    """The sample stream's first line (see `sample_header_line`), or None."""
    for obj in _json_lines(path):
        return obj if "start_ns" in obj else None
    return None


def sample_line(frames: list[list[Any]], stacks: list[list[int]], end_ns: list[int], stack: list[int]) -> str:
    return json.dumps({"frames": frames, "stacks": stacks, "end_ns": end_ns, "stack": stack}, separators=(",", ":"))


FRAME_KEYS = ("function", "file", "line", "first_line", "library")


def _index(value: Any, n: int) -> bool:
    return isinstance(value, int) and 0 <= value < n


def read_sample_stream(path: Path, t0_ns: int) -> tuple[dict[str, list[int]], dict[str, Any]] | None:
    """samples.stream.jsonl as (samples.parquet's columns, stacks.json), or None if there is no
    stream. A flush line whose frames or stacks do not add up is skipped with its samples."""
    if not path.exists():
        return None
    frames: list[dict[str, Any]] = []
    stacks: list[list[int]] = []
    t_col: list[int] = []
    dt_col: list[int] = []
    id_col: list[int] = []
    previous: int | None = None
    for obj in _json_lines(path):
        if "start_ns" in obj:
            if previous is None and isinstance(obj["start_ns"], int):
                previous = obj["start_ns"]
            continue
        new_frames, new_stacks = obj.get("frames", []), obj.get("stacks", [])
        ends, ids = obj.get("end_ns", []), obj.get("stack", [])
        if previous is None or not all(isinstance(x, list) for x in (new_frames, new_stacks, ends, ids)):
            continue
        n_frames, n_stacks = len(frames) + len(new_frames), len(stacks) + len(new_stacks)
        if (
            len(ends) != len(ids)
            or not all(isinstance(f, list) and len(f) == len(FRAME_KEYS) for f in new_frames)
            or not all(isinstance(s, list) and all(_index(i, n_frames) for i in s) for s in new_stacks)
            or not all(_index(i, n_stacks) for i in ids)
            or not all(isinstance(e, int) for e in ends)
        ):
            continue
        frames += [dict(zip(FRAME_KEYS, f)) for f in new_frames]
        stacks += new_stacks
        for end, sid in zip(ends, ids):
            t_col.append(previous - t0_ns)
            dt_col.append(end - previous)
            id_col.append(sid)
            previous = end
    return {"t_ns": t_col, "dt_ns": dt_col, "stack_id": id_col}, {"frames": frames, "stacks": stacks}


# -- telemetry -------------------------------------------------------------------------------------
def read_telemetry_stream(path: Path | str) -> pd.DataFrame:
    """telemetry.stream.csv as a DataFrame (t_ns int64 absolute, source, metric, value float64).
    Whatever follows the last newline (a line cut by a kill) is dropped, and so is any malformed
    row (a missing field, text where a number belongs)."""
    import pandas as pd

    body = io.BytesIO(_complete_lines(Path(path)) or (",".join(TELEMETRY_COLUMNS) + "\n").encode())
    options: dict[str, Any] = {"names": list(TELEMETRY_COLUMNS), "header": 0, "on_bad_lines": "skip"}
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


def tally_telemetry_stream(path: Path) -> tuple[int, dict[str, int], list[tuple[str, str]]]:
    """(rows, each source's last t_ns, the (source, metric) pairs with rows) of telemetry.stream.csv,
    without pandas: the run's end says this in run.json, and the table is a reader's to build.
    Rows are skipped as `read_telemetry_stream` skips them (a cut line, a missing field, a value
    or time that is no number)."""
    rows = 0
    last: dict[str, int] = {}
    pairs: dict[tuple[str, str], None] = {}
    for line in _complete_lines(path).decode("utf-8", errors="replace").splitlines()[1:]:
        parts = line.split(",")
        if len(parts) != 4 or not parts[1] or not parts[2]:
            continue
        try:
            t_ns, value = int(parts[0]), float(parts[3])
        except ValueError:
            continue
        if value != value:  # NaN: pandas drops it too
            continue
        rows += 1
        last[parts[1]] = max(t_ns, last.get(parts[1], t_ns))
        pairs[(parts[1], parts[2])] = None
    return rows, last, list(pairs)


def remove_streams(run_dir: Path) -> None:
    """Removes the streams once the tables hold what they held."""
    for name in STREAMS:
        (run_dir / name).unlink(missing_ok=True)
