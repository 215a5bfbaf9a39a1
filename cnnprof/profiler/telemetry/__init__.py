"""Hardware telemetry: a separate sampler process reads each source every interval into a stream
file, which the first reader of the run turns into its `telemetry.parquet` (traces/tables.py).

Sources (`SOURCE_NAMES`): procfs (psutil, any OS), rapl (Linux powercap), nvml (NVIDIA),
macmon (macOS, no sudo), powermetrics (macOS, sudo). A metric is named within its source;
`<source>.<metric>` names it alone (run.json's metric table and traces/energy.py use that).
"""

from ...traces.nvml_codes import decode_clock_event_reasons
from .base import SourceStatus
from .launcher import (
    SamplerHandle,
    TelemetryResult,
    available_sources,
    close_stream,
    spawn_sampler,
    start_sampler,
)
from .powermetrics import parse_powermetrics_command
from .registry import SOURCE_NAMES
from .stream import read_stream

__all__ = [
    "SOURCE_NAMES",
    "SamplerHandle",
    "SourceStatus",
    "TelemetryResult",
    "available_sources",
    "decode_clock_event_reasons",
    "close_stream",
    "parse_powermetrics_command",
    "read_stream",
    "spawn_sampler",
    "start_sampler",
]
