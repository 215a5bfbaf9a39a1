"""Recovers a run whose process died without ending it (SIGKILL, `os._exit`, a crash of the
interpreter, power loss): run.json still says `running`, and the spans, stack samples and
telemetry are in their stream files (traces/streams.py) instead of their tables.

`recover` builds the tables from the streams as the first reader of any run does (traces/tables.py),
marks the run `killed` with the time of the last data as its duration, and says what was kept in
run.json's `losses`. It writes the run directory once (tables first, run.json next, the streams
last), so a reader that dies halfway leaves a run that the next reader recovers again; in a
directory it cannot write it works in memory and the streams stay.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from . import schema, streams
from .record import RunRecord, read_record
from .tables import Tables, build_lock, collect, store


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


def recover(run_dir: Path) -> Tables | None:
    """The run's tables and record after recovery (see the module doc), or None when another
    reader recovered it meanwhile (it is on disk); never raises for a bad stream."""
    with build_lock(run_dir):
        record = read_record(run_dir)
        return _recover(run_dir, record) if is_abandoned(record) else None


def _recover(run_dir: Path, record: RunRecord) -> Tables:
    t0 = record.t0_perf_ns
    if (run_dir / streams.TELEMETRY_STREAM).exists():
        record.set_section("telemetry", _telemetry_section(run_dir, t0, record.telemetry.interval_ms))
    tables = collect(run_dir, record)
    record = tables.record
    last_ns = [0]
    spans = tables.frame(schema.SPANS)
    if spans is not None and len(spans):
        last_ns.append(int(spans["end_ns"].max()))
    samples = tables.frame(schema.SAMPLES)
    if samples is not None:
        if len(samples):
            last_ns.append(int((samples["t_ns"] + samples["dt_ns"]).max()))
        record.profiler.update(timeline="sampler", samples=len(samples), sampled_s=float(samples["dt_ns"].sum()) / 1e9)
    telemetry = tables.frame(schema.TELEMETRY)
    if telemetry is not None and len(telemetry):
        last_ns.append(int(telemetry["t_ns"].max()))
    kept = {k: v for k, v in tables.counts.items() if k in ("spans", "samples", "telemetry_rows")}
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
    store(run_dir, tables)
    return tables


def _telemetry_section(run_dir: Path, t0: int, interval_ms: float | None) -> dict[str, Any]:
    # The sampler process's own tally (it knows the sources' metric tables and the status sidecar).
    from ..profiler.telemetry.launcher import close_stream

    return {**close_stream(run_dir, t0).to_json(), "interval_ms": interval_ms}
