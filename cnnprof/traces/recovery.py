"""Recovers a run whose process died without ending it (SIGKILL, `os._exit`, a crash of the
interpreter, power loss): run.json still says `running`, and the spans, stack samples and
telemetry are in their stream files (traces/streams.py) instead of their tables.

`recover` merges the streams into the tables, marks the run `killed` with the time of the last
data as its duration, and says what was kept in run.json's `losses`. It writes the run directory
once (tables first, run.json next, the streams last), so a reader that dies halfway leaves a
run that the next reader recovers again; in a directory it cannot write it works in memory and
the streams stay (the reader reads them in place of the tables).
"""

from __future__ import annotations

import copy
import os
import platform
from pathlib import Path
from typing import Any

from . import schema, streams
from .record import RunRecord, write_record
from .writer import write_json, write_table


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def is_abandoned(record: RunRecord) -> bool:
    """A `running` run whose process is gone. A run from another host (a copied directory) cannot
    be going on here; on this host its pid says (a record without one, written by hand or by a
    test, is left as it is)."""
    if record.status != "running" or record.pid is None:  # no pid: nothing says it died
        return False
    if record.host.hostname and record.host.hostname != platform.node():
        return True
    return not process_alive(record.pid)


def recover(run_dir: Path, record: RunRecord) -> RunRecord:
    """The run's record after recovery (see the module doc); never raises for a bad stream."""
    record = copy.deepcopy(record)  # the caller's stays as it was read
    t0 = record.t0_perf_ns
    kept: dict[str, int] = {}
    last_ns = [0]
    written = True

    def write(action: Any, *args: Any) -> None:
        nonlocal written
        if written:
            try:
                action(*args)
            except OSError:
                written = False

    spans = streams.read_span_stream(run_dir / streams.SPANS_STREAM, t0)
    if spans is not None:
        kept["spans"] = len(spans["kind"])
        last_ns.append(max(spans["end_ns"], default=0))
        write(write_table, run_dir / schema.SPANS, spans, schema.SPANS_SCHEMA)
    sampled = streams.read_sample_stream(run_dir / streams.SAMPLES_STREAM, t0)
    if sampled is not None:
        columns, stacks = sampled
        kept["samples"] = len(columns["t_ns"])
        ends = [t + dt for t, dt in zip(columns["t_ns"], columns["dt_ns"])]
        last_ns.append(max(ends, default=0))
        write(write_table, run_dir / schema.SAMPLES, columns, schema.SAMPLES_SCHEMA)
        write(write_json, run_dir / schema.STACKS, stacks)
        profiler = record.profiler
        profiler.update(timeline="sampler", samples=kept["samples"], sampled_s=sum(columns["dt_ns"]) / 1e9)
        profiler["files"] = [schema.SAMPLES, schema.STACKS]
    telemetry_stream = run_dir / streams.TELEMETRY_STREAM
    if telemetry_stream.exists():
        frame = streams.read_telemetry_stream(telemetry_stream)
        kept["telemetry_rows"] = len(frame)
        if len(frame):
            last_ns.append(int(frame["t_ns"].max()) - t0)
        if written:
            record.set_section("telemetry", _merge_telemetry(run_dir, t0, record.telemetry.interval_ms))
    duration = max(last_ns)
    record.status = "killed"
    record.duration_ns = duration
    record.error = (
        f"the process (pid {record.pid}) ended without closing the run (SIGKILL, os._exit, a crash "
        f"or power loss); recovered from its streams up to {duration / 1e9:.1f} s"
    )
    what = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in kept.items()) or "nothing"
    record.recovered = {**kept, "last_data_s": duration / 1e9}
    record.losses.append(
        f"recovered run: its process died at about {duration / 1e9:.1f} s without writing its tables; "
        f"kept {what} from the streams (at most the last half second is lost)"
    )
    write(write_record, run_dir, record)
    if written:
        streams.remove_streams(run_dir)
    return record


def _merge_telemetry(run_dir: Path, t0: int, interval_ms: float | None) -> dict[str, Any]:
    # The sampler process's own merge (it knows the sources' metric tables and the status sidecar).
    from ..profiler.telemetry.launcher import merge_stream

    return {**merge_stream(run_dir, t0).to_json(), "interval_ms": interval_ms}
