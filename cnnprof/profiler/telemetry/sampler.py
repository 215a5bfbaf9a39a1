"""The sampler process: `python -m cnnprof.profiler.telemetry --out STREAM --sources auto
--interval-ms 100 --parent-pid PID`.

It probes the sources, writes the status sidecar the parent waits for, then reads every working
source each interval into the stream file until SIGTERM (the parent's stop) or the parent's death.
SIGINT is ignored: Ctrl-C belongs to the training process, which stops the sampler itself and so
keeps the last second. Cycles run on absolute deadlines (start + k * interval), so a slow read
delays one sample, not all the following ones; ticks missed entirely are skipped, not bunched.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import select
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from ...errors import UserError
from .base import Source, SourceConfig, SourceStatus
from .registry import FALLBACKS, check_interval, parse_sources, probe_all
from .stream import StreamWriter, write_status

log = logging.getLogger(__name__)

# Longest sleep between checks of the parent: the sampler outlives a dead parent by at most this
# (where PR_SET_PDEATHSIG does not end it at once: macOS, or a --parent-pid that is not the parent).
PARENT_CHECK_S = 0.2
PR_SET_PDEATHSIG = 1


class StopSignal:
    """SIGTERM or the parent's death ends the run. SIGTERM's handler only sets a flag; the signal
    module's wakeup fd wakes the sleeping select() at once."""

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid
        self.direct_parent = parent_pid == os.getppid()
        self.requested = False
        self._wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.direct_parent and sys.platform == "linux":
            # The kernel sends SIGTERM when the parent dies. A failure here costs only promptness.
            try:
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            except (OSError, AttributeError):
                log.warning("prctl(PR_SET_PDEATHSIG) unavailable; polling for the parent instead")

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def parent_alive(self) -> bool:
        if self.direct_parent:
            return os.getppid() == self.parent_pid  # a dead parent's children are re-parented
        try:
            os.kill(self.parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by someone else
        return True

    def sleep_until(self, deadline_ns: int) -> bool:
        """Sleeps to `deadline_ns` (perf_counter_ns); False as soon as the run should end."""
        while not self.requested and self.parent_alive():
            remaining_ns = deadline_ns - time.perf_counter_ns()
            if remaining_ns <= 0:
                return True
            ready, _, _ = select.select([self._wake_r], [], [], min(remaining_ns / 1e9, PARENT_CHECK_S))
            if ready:
                os.read(self._wake_r, 512)
        return False


def _status_json(
    pid: int, interval_ms: int, statuses: dict[str, SourceStatus], sources: dict[str, Source]
) -> dict[str, Any]:
    return {
        "pid": pid,
        "interval_ms": interval_ms,
        "sources": {n: {"ok": s.ok, "reason": s.reason, "fix": s.fix} for n, s in statuses.items()},
        "metrics": {n: {m: list(entry) for m, entry in src.metrics.items()} for n, src in sources.items()},
    }


class FailureHook:
    """Records a source that fails mid-run in the status sidecar (so run.json says why its
    rows stop) and in the log."""

    def __init__(self, stream: Path, status: dict[str, Any]) -> None:
        self._stream = stream
        self._status = status

    def __call__(self, name: str, exc: Exception) -> None:
        reason = f"failed during the run: {type(exc).__name__}: {exc}"
        log.warning("%s %s", name, reason)
        self._status["sources"][name] = {"ok": False, "reason": reason, "fix": ""}
        write_status(self._stream, self._status)


def sample(
    sources: dict[str, Source],
    writer: StreamWriter,
    interval_ms: int,
    stop: StopSignal,
    on_failure: FailureHook,
) -> None:
    """The loop: read each source, write, sleep to the next deadline; a last read at the end."""
    interval_ns = interval_ms * 1_000_000
    start = time.perf_counter_ns()
    tick = 0
    while True:
        for name, source in list(sources.items()):
            try:
                writer.write(name, source.read(time.perf_counter_ns()))
            except Exception as exc:  # one broken source must not end the others
                del sources[name]
                source.close()
                on_failure(name, exc)
        writer.flush_if_due()
        tick = max(tick + 1, (time.perf_counter_ns() - start) // interval_ns + 1)
        if not stop.sleep_until(start + tick * interval_ns):
            break
    for name, source in sources.items():
        try:
            writer.write(name, source.read(time.perf_counter_ns(), final=True))
        except Exception as exc:
            on_failure(name, exc)


def run(out: Path, names: list[str], interval_ms: int, parent_pid: int, *, auto: bool = False) -> int:
    stop = StopSignal(parent_pid)  # first: from here on SIGTERM is a clean stop
    sources, statuses = probe_all(names, SourceConfig(interval_ms, parent_pid), fallbacks=FALLBACKS if auto else None)
    writer = StreamWriter(out)
    status = _status_json(os.getpid(), interval_ms, statuses, sources)
    write_status(out, status)
    try:
        sample(sources, writer, interval_ms, stop, FailureHook(out, status))
    finally:
        writer.close()
        for source in sources.values():
            source.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnprof.profiler.telemetry", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="stream file to write (CSV)")
    parser.add_argument("--sources", default="auto", help="auto, none, or a comma list")
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=os.getppid(),
        help="exit when this process ends (default: the parent)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(levelname)s: %(message)s", level=logging.WARNING)
    try:
        names = parse_sources(args.sources)
        check_interval(args.interval_ms)
    except UserError as exc:
        parser.error(str(exc))
    return run(args.out, names, args.interval_ms, args.parent_pid, auto=args.sources.strip() == "auto")
