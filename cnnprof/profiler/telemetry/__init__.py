"""Hardware telemetry: a separate sampler process reads each source every interval into a stream
file, which the first reader of the run turns into its `telemetry.parquet` (traces/tables.py).

Sources (`SOURCE_NAMES`): procfs (psutil, any OS), rapl (Linux powercap), nvml (NVIDIA),
macmon (macOS, no sudo), powermetrics (macOS, sudo). A metric is named within its source;
`<source>.<metric>` names it alone (run.json's metric table and traces/energy.py use that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import SOURCE_NAMES

if TYPE_CHECKING:
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
    from .stream import read_stream

# Loaded on first use: `cnnprof profile` imports this package before the profiled script starts,
# and needs only the launcher's spawn then (benchmarks/fixed_cost.py).
_LAZY = {
    "SamplerHandle": "launcher",
    "TelemetryResult": "launcher",
    "available_sources": "launcher",
    "close_stream": "launcher",
    "spawn_sampler": "launcher",
    "start_sampler": "launcher",
    "SourceStatus": "base",
    "decode_clock_event_reasons": "...traces.nvml_codes",
    "parse_powermetrics_command": "powermetrics",
    "read_stream": "stream",
}
__all__ = [
    "SOURCE_NAMES",
    "SamplerHandle",
    "SourceStatus",
    "TelemetryResult",
    "available_sources",
    "close_stream",
    "decode_clock_event_reasons",
    "parse_powermetrics_command",
    "read_stream",
    "spawn_sampler",
    "start_sampler",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module if module.startswith(".") else f".{module}", __name__), name)
