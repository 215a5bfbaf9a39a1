"""What a run lost or could not show, in one list for every place a user looks (the closing
terminal lines, `cnnprof diagnose`, the report's "What is missing"): the reader adds it to its
notes (traces/reader.py).

From the record alone, so it costs nothing to ask: the run's own `losses` (a recovered kill,
non-finite numbers written as null, a stream that could not be written), a telemetry sampler that
died, a source whose readings stopped well before the run did, stack samples dropped by overruns,
and the stack profiler's own errors.
"""

from __future__ import annotations

from .record import RunRecord

# A source is stalled when its last reading is further from the run's end than this many of its
# intervals (and at least STALL_MIN_S): a sampler that is merely late by a period or two is not.
STALL_INTERVALS = 10
STALL_MIN_S = 2.0


def losses(record: RunRecord) -> list[str]:
    out = list(record.losses)
    telemetry = record.telemetry
    if telemetry.error:
        out.append(f"telemetry: {telemetry.error}")
    duration_s = (record.duration_ns or 0) / 1e9
    slack = max(STALL_MIN_S, STALL_INTERVALS * (telemetry.interval_ms or 100) / 1e3)
    for source, last_s in sorted(telemetry.last_s.items()):
        if duration_s - last_s > slack:
            out.append(
                f"telemetry: {source}'s readings stop at {last_s:.1f} s of a {duration_s:.1f} s run "
                "(the source stalled or died; see run.json's telemetry warnings)"
            )
    profiler = record.profiler
    overruns = profiler.get("sampler_overruns")
    if isinstance(overruns, int) and overruns > 0:
        out.append(
            f"stack samples: {overruns:,} timer signals came while the sampler's handler still ran and "
            "were dropped (their time went to the next sample); a longer --profile-interval-ms avoids it"
        )
    errors = profiler.get("errors")
    for error in errors if isinstance(errors, list) else []:
        out.append(f"stack profiler: {error}")
    return out
