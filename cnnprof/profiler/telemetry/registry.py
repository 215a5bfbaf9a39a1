"""The sources by name, the `--telemetry` spelling of a choice of them, and probing them.

A source's module is imported when it is probed (in the sampler process), not when its name is
checked: `cnnprof profile` checks `--telemetry` before the profiled script starts, and the sources'
modules (psutil, plistlib, ...) would add ~50 ms to that start."""

from __future__ import annotations

import logging
from importlib import import_module

from ...errors import UserError
from .base import Source, SourceConfig, SourceStatus, unavailable

log = logging.getLogger(__name__)

# Name -> "module.Class" in this package. Probe order: the cheap ones first (powermetrics may wait
# up to a second for its first window).
SOURCES: dict[str, str] = {
    "procfs": "procfs.ProcfsSource",
    "rapl": "rapl.RaplSource",
    "nvml": "nvml.NvmlSource",
    "macmon": "macmon.MacmonSource",
    "powermetrics": "powermetrics.PowermetricsSource",
}
# With `auto`, a source here is probed only when the one it names does not work: macmon reads
# what powermetrics reads, without sudo. Named explicitly, both run (and can be compared).
FALLBACKS: dict[str, str] = {"powermetrics": "macmon"}
SOURCE_NAMES = tuple(SOURCES)
# Below 10 ms the sampler's own reads (ms on a many-core machine) are a large part of the cycle;
# above 5 s a phase of a small run could fall between two samples.
INTERVAL_MS_RANGE = (10, 5000)


def parse_sources(spec: str) -> list[str]:
    """`auto` -> every source (each is probed; those that work are sampled), `none` -> [],
    "a,b" -> those, in that order."""
    spec = spec.strip()
    if spec == "auto":
        return list(SOURCE_NAMES)
    if spec == "none":
        return []
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in SOURCES]
    if unknown or not names:
        raise UserError(
            f"unknown telemetry source {', '.join(unknown) or repr(spec)}: use auto, none, "
            f"or a comma list of {', '.join(SOURCE_NAMES)}"
        )
    return list(dict.fromkeys(names))


def source_class(name: str) -> type[Source]:
    module, _, cls = SOURCES[name].rpartition(".")
    found: type[Source] = getattr(import_module(f".{module}", __package__), cls)
    return found


def check_interval(interval_ms: int) -> None:
    low, high = INTERVAL_MS_RANGE
    if not low <= interval_ms <= high:
        raise UserError(f"telemetry interval {interval_ms} ms is out of range: pass {low}..{high}")


def probe_all(
    names: list[str], config: SourceConfig, *, fallbacks: dict[str, str] | None = None
) -> tuple[dict[str, Source], dict[str, SourceStatus]]:
    """Probes each named source: (the ones that work, every one's status). A failed one is
    already closed; the caller closes the working ones. A source in `fallbacks` is skipped when
    the source it falls back from works (the preferred one is probed first: SOURCES' order)."""
    working: dict[str, Source] = {}
    statuses: dict[str, SourceStatus] = {}
    for name in names:
        preferred = (fallbacks or {}).get(name)
        if preferred in working:
            statuses[name] = unavailable(
                f"{preferred} is sampled instead", f"--telemetry {preferred},{name} samples both"
            )
            continue
        source = source_class(name)(config)
        try:
            status = source.probe()
        except Exception as exc:  # a probe must never take the sampler down with it
            log.warning("probing %s raised %s: %s", name, type(exc).__name__, exc)
            status = unavailable(f"probe failed ({type(exc).__name__}: {exc})")
        statuses[name] = status
        if status.ok:
            working[name] = source
        else:
            source.close()
    return working, statuses
