"""The run's tables, built from its streams by the first reader.

A run's end writes only run.json (with `pending`: what is left to do) and leaves the streams
(traces/streams.py) as they are, so that `cnnprof profile` and `run` stop in a few tens of
milliseconds instead of importing pandas and pyarrow (benchmarks/fixed_cost.py). The first reader
(traces/reader.py's RunData: the closing diagnosis, `report`, `diagnose`, `export`, a job report,
the API) then calls `build`: it reads the streams, derives what the run's end used to (the step
spans from the hooks, each epoch's energy, the summary with it, profile.pyisession), writes the
tables, then run.json with `pending` empty, and removes the streams last. Every write is atomic,
so a reader killed at any moment leaves a run that the next reader builds again from the same
streams: nothing is lost. In a directory it cannot write, `build` still returns the tables (in
memory), and the next reader builds them again. Two readers at once (the run's own closing lines
and a `cnnprof report` in another terminal) take turns on a lock of run.json: the second finds the
tables built and reads them.

Recovery of a killed run (traces/recovery.py) is the same build, with its record marked `killed`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import schema, streams
from .record import RunRecord, read_record, write_record
from .summary import summarize

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

PENDING_TABLES = "tables"
PENDING_STEPS = "steps"
PENDING_PYISESSION = "pyisession"


@dataclass
class Tables:
    """A run's tables as a build made them (Arrow tables by file name: schema.SPANS, ...), and
    its record after the build."""

    record: RunRecord
    arrow: dict[str, pa.Table] = field(default_factory=dict)
    stacks: dict[str, Any] | None = None  # stacks.json, when there were stack samples
    pyisession: bool = False  # profile.pyisession is to be written from the samples
    counts: dict[str, int] = field(default_factory=dict)  # rows kept of each stream, for recovery

    def frame(self, name: str) -> pd.DataFrame | None:
        """Table `name` as the reader would read it from its Parquet file, or None."""
        table = self.arrow.get(name)
        return None if table is None else table.to_pandas()


def needs_build(record: RunRecord) -> bool:
    """The run ended (or died) and left work to its first reader."""
    return bool(record.pending) and record.status != "running"


def collect(run_dir: Path, record: RunRecord) -> Tables:
    """The tables of `run_dir` from its streams, in memory; `record` is left as it is (the
    returned one has the derived figures and `pending` empty)."""
    from .writer import to_table

    record = copy.deepcopy(record)
    t0 = record.t0_perf_ns
    out = Tables(record, pyisession=PENDING_PYISESSION in record.pending)
    rows = streams.read_span_rows(run_dir / streams.SPANS_STREAM)
    if rows is not None:
        out.counts["spans"] = len(rows)
        if PENDING_STEPS in record.pending:
            from .steps import step_rows

            derived, info = step_rows(rows, t0)
            rows = [*rows, *derived]
            record.sections["step_hooks"] = {**record.section("step_hooks"), **info}
        out.arrow[schema.SPANS] = to_table(streams.spans_to_columns(rows, t0), schema.SPANS_SCHEMA)
    sampled = streams.read_sample_stream(run_dir / streams.SAMPLES_STREAM, t0)
    if sampled is not None:
        columns, out.stacks = sampled
        out.counts["samples"] = len(columns["t_ns"])
        out.arrow[schema.SAMPLES] = to_table(columns, schema.SAMPLES_SCHEMA)
    telemetry_stream = run_dir / streams.TELEMETRY_STREAM
    # No stream with a telemetry section: `--telemetry none`, or a sampler that never wrote.
    if telemetry_stream.exists() or (
        record.telemetry.interval_ms is not None and not (run_dir / schema.TELEMETRY).exists()
    ):
        out.arrow[schema.TELEMETRY] = telemetry_table(telemetry_stream, t0)
        out.counts["telemetry_rows"] = out.arrow[schema.TELEMETRY].num_rows
    got = streams.read_rows_stream(run_dir / streams.METRICS_STREAM)
    if got is not None:
        metric_rows, inference_rows = got
        _add_epoch_energy(out, metric_rows, rows or [], t0)
        record.summary = {**record.summary, **summarize(metric_rows, inference_rows)}
        out.arrow[schema.METRICS] = to_table(_columns(metric_rows), schema.METRICS_SCHEMA)
        out.arrow[schema.INFERENCE] = to_table(_columns(inference_rows), schema.INFERENCE_SCHEMA)
    if out.stacks is not None:
        record.profiler["files"] = _merged(record.profiler.get("files"), [schema.SAMPLES, schema.STACKS])
    record.pending = []
    return out


def store(run_dir: Path, tables: Tables) -> bool:
    """Writes the tables, then run.json, then removes the streams; False (and nothing more
    written) when the directory cannot be written."""
    from .writer import write_arrow, write_json

    try:
        for name, table in tables.arrow.items():
            write_arrow(run_dir / name, table)
        if tables.stacks is not None:
            write_json(run_dir / schema.STACKS, tables.stacks)
            if tables.pyisession:
                _write_pyisession(run_dir, tables)
        if (run_dir / schema.PROCESSES).is_dir():
            from ..profiler.children import convert

            convert(run_dir, tables.record.t0_perf_ns)
        write_record(run_dir, tables.record)
    except OSError:
        return False
    streams.remove_streams(run_dir)
    return True


def build(run_dir: Path) -> Tables | None:
    """`collect`, then `store` (see the module doc); None when another reader has built the
    tables meanwhile (they are on disk)."""
    with build_lock(run_dir):
        record = read_record(run_dir)
        if not needs_build(record):
            return None
        tables = collect(run_dir, record)
        store(run_dir, tables)
        return tables


@contextlib.contextmanager
def build_lock(run_dir: Path) -> Iterator[None]:
    """Holds the run directory's build lock: run.json's, as the file is now. A reader that waited
    on it finds run.json replaced (the build's last write) and reads it anew. No lock where none
    can be taken (a system without `fcntl`)."""
    try:
        import fcntl

        handle = open(run_dir / schema.RUN_JSON, "rb")  # noqa: SIM115 (closed below)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # releases the lock


def telemetry_table(stream: Path, t0_ns: int) -> pa.Table:
    """telemetry.stream.csv as telemetry.parquet's table: times relative to `t0_ns`, sorted by
    time (empty when there is no stream)."""
    from .writer import to_table

    frame = streams.read_telemetry_stream(stream)
    frame = frame.assign(t_ns=frame["t_ns"] - t0_ns).sort_values("t_ns", kind="stable")
    return to_table({c: frame[c].to_numpy() for c in schema.TELEMETRY_SCHEMA.names}, schema.TELEMETRY_SCHEMA)


# -- the parts ---------------------------------------------------------------------------------
def _merged(old: Any, new: list[str]) -> list[str]:
    have = [f for f in old if isinstance(f, str)] if isinstance(old, list) else []
    return have + [f for f in new if f not in have]


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    return {name: [row.get(name) for row in rows] for name in names}


def _add_epoch_energy(tables: Tables, metric_rows: list[dict[str, Any]], span_rows: list[Any], t0: int) -> None:
    """`energy_j.<source>.<metric>` per epoch, over the epoch's training phase (its `train` span)."""
    telemetry = tables.frame(schema.TELEMETRY)
    if not metric_rows or telemetry is None:
        return
    from .energy import power_series, series_energy

    series = power_series(telemetry)
    if not series:
        return
    train_spans = {row[4]: (row[2] - t0, row[3] - t0) for row in span_rows if row[0] == "train"}
    for metrics in metric_rows:
        window = train_spans.get(metrics.get("epoch"))
        if window is None:
            continue
        for key, s in series.items():
            metrics[f"energy_j.{key}"] = series_energy(s, *window)


def _write_pyisession(run_dir: Path, tables: Tables) -> None:
    """profile.pyisession (pyinstrument's own session file) from the sample stream's samples."""
    from ..profiler.stacks import pyisession_from_samples
    from .writer import replace_atomically

    header = streams.read_sample_header(run_dir / streams.SAMPLES_STREAM) or {}
    assert tables.stacks is not None
    session = pyisession_from_samples(tables.arrow[schema.SAMPLES], tables.stacks, header.get("session") or {})
    replace_atomically(run_dir / schema.PYISESSION, session.save)
    tables.record.profiler["files"] = _merged(tables.record.profiler.get("files"), [schema.PYISESSION])
