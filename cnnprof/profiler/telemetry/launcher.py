"""The training process's side of telemetry: start the sampler process, stop it, and say what its
stream holds (the stream stays: the first reader turns it into `telemetry.parquet`, traces/tables.py).

    handle = start_sampler(run_dir, "auto", 100, t0_perf_ns)
    ...                                   # train; the sampler appends to its stream file
    result = handle.stop()                # TelemetryResult for run.json

Nothing here raises for a sampler that fails: training goes on, and `stop()` says what happened.
Only a wrong request (an unknown source, an interval out of range) is a `UserError`, at start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cnnprof

from ...traces.streams import TELEMETRY_STREAM, tally_telemetry_stream
from .base import SourceConfig, SourceStatus, describe
from .registry import SOURCE_NAMES, check_interval, parse_sources, probe_all
from .stream import log_path, read_status, status_path

# pandas and pyarrow (~0.5-1.5 s, ~50 MB) stay out of the sampler process, which imports this
# package, and out of the run's end, which only tallies the stream (close_stream).

STREAM_NAME = TELEMETRY_STREAM
# The sampler probes before it writes its status: NVML init and powermetrics' first window take
# a second or two; past this the run goes on and stop() reports whatever happened.
STATUS_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
MAX_WARNINGS = 20


@dataclass
class TelemetryResult:
    """What run.json keeps under "telemetry"."""

    sources: dict[str, str]  # name -> "ok" | "unavailable: <reason>"
    # "<source>.<metric>" (as energy.py keys power series) -> {"unit", "description", "source"}
    metrics: dict[str, dict[str, str]]
    error: str | None = None  # why the sampler died, if it did
    rows: int = 0
    warnings: list[str] = field(default_factory=list)  # what the sampler logged (skipped documents, ...)
    last_s: dict[str, float] = field(default_factory=dict)  # each source's last reading (a stall shows)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SamplerHandle:
    """A running sampler (or none, for `--telemetry none`). `stop()` may be called any number of
    times and after the sampler died; the first call does the work."""

    def __init__(
        self, run_dir: Path, process: subprocess.Popen[bytes] | None, names: list[str], t0_perf_ns: int
    ) -> None:
        self.run_dir = run_dir
        self.stream = run_dir / STREAM_NAME
        self._process = process
        self._names = names
        self._t0 = t0_perf_ns
        self._result: TelemetryResult | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def sources(self) -> dict[str, str]:
        """Each requested source's status as the sampler probed it (empty until it has)."""
        status = read_status(self.stream) or {}
        return {name: _label(entry) for name, entry in status.get("sources", {}).items()}

    def attach(self, t0_perf_ns: int) -> None:
        """The run's clock anchor (the stream's t0). It does not wait for the sampler's probes:
        the run starts at once, and the sampler's rows begin when it is up (~0.1-0.3 s after it
        was spawned; `cnnprof profile` spawns it first thing, so mostly before the script's first
        line). A run that ends sooner waits for it in `stop`."""
        self._t0 = t0_perf_ns

    def wait_for_status(self, timeout_s: float) -> bool:
        """True once the sampler has probed its sources; False if it died first or took too long."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if status_path(self.stream).exists():
                return True
            if self._process is None or self._process.poll() is not None:
                return status_path(self.stream).exists()
            time.sleep(0.01)
        return False

    def stop(self) -> TelemetryResult:
        if self._result is None:
            self._result = close_stream(self.run_dir, self._t0, self._terminate(), self._names)
        return self._result

    def _terminate(self) -> str | None:
        """Stops the sampler; says why it failed, if it did."""
        process = self._process
        if process is None:
            return None
        died_early = process.poll() is not None
        if not died_early:
            # A run shorter than the sampler's start-up: let it probe (and so read once) first.
            self.wait_for_status(STATUS_TIMEOUT_S)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                return f"the telemetry sampler did not stop within {STOP_TIMEOUT_S:.0f} s and was killed"
        code = process.returncode
        if not died_early and code == 0:
            return None
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        when = "during the run" if died_early else "when stopped"
        last = _last_line(log_path(self.stream))
        return (
            f"the telemetry sampler {how} {when}" + (f": {last}" if last else "") + f" (log: {log_path(self.stream)})"
        )


def close_stream(
    run_dir: Path, t0_perf_ns: int, error: str | None = None, names: list[str] | None = None
) -> TelemetryResult:
    """What the sampler's stream in `run_dir` holds (rows, metrics, each source's last reading),
    read without pandas; removes the stream's status and (unless `error`) its log, and leaves the
    stream for the first reader to turn into telemetry.parquet. `stop()` calls it; so does the
    recovery of a run that was killed (SIGKILL, power loss) before stop(). `error` is why the
    sampler failed, `names` the sources asked for (a source that never got probed is reported as
    such)."""
    stream = Path(run_dir) / STREAM_NAME
    status = read_status(stream) or {}
    sources = {name: _label(entry) for name, entry in status.get("sources", {}).items()}
    for name in names or []:
        sources.setdefault(name, "unavailable: the sampler stopped before probing it")
    warnings = _warnings(log_path(stream))
    rows, last_ns, pairs = tally_telemetry_stream(stream)
    declared = status.get("metrics", {})
    metrics: dict[str, dict[str, str]] = {}
    for source, metric in pairs:
        table = {m: (entry[0], entry[1]) for m, entry in declared.get(source, {}).items()}
        unit, description = describe(table, metric) or ("", "")
        metrics[f"{source}.{metric}"] = {"unit": unit, "description": description, "source": source}
    for path in (status_path(stream),) + (() if error else (log_path(stream),)):
        with contextlib.suppress(OSError):  # a read-only directory (a recovery): kept, harmless
            path.unlink(missing_ok=True)
    last_s = {source: (t - t0_perf_ns) / 1e9 for source, t in last_ns.items()}
    return TelemetryResult(sources, metrics, error, rows, warnings, last_s)


def start_sampler(run_dir: Path, sources: str, interval_ms: int, t0_perf_ns: int) -> SamplerHandle:
    """Starts the sampler process for `sources` ("auto", "none" or "a,b") and waits until it has
    probed them (see `SamplerHandle.sources`)."""
    handle = spawn_sampler(run_dir, sources, interval_ms)
    handle.attach(t0_perf_ns)
    handle.wait_for_status(STATUS_TIMEOUT_S)
    return handle


def spawn_sampler(run_dir: Path, sources: str, interval_ms: int) -> SamplerHandle:
    """Starts the sampler process and returns at once; `attach` (the run's clock anchor) then
    waits for its probes. Started early, its start-up overlaps the caller's own.

    Call it from the main thread (or one that lives as long as the run): on Linux the sampler
    asks for SIGTERM when the thread that started it ends (PR_SET_PDEATHSIG follows the thread).
    """
    names = parse_sources(sources)
    check_interval(interval_ms)
    run_dir = Path(run_dir)
    if not names:
        return SamplerHandle(run_dir, None, [], 0)
    run_dir.mkdir(parents=True, exist_ok=True)
    stream = run_dir / STREAM_NAME
    for stale in (stream, status_path(stream), log_path(stream)):
        stale.unlink(missing_ok=True)
    env = dict(os.environ)
    # The sampler must run this very cnnprof, installed or not.
    package_root = str(Path(cnnprof.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    cmd = [
        sys.executable,
        "-m",
        "cnnprof.profiler.telemetry",
        "--out",
        str(stream),
        "--sources",
        "auto" if sources.strip() == "auto" else ",".join(names),  # auto also says: prefer macmon
        "--interval-ms",
        str(interval_ms),
        "--parent-pid",
        str(os.getpid()),
    ]
    with open(log_path(stream), "wb") as log:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            # Its own session: Ctrl-C in the terminal reaches the training process only, which
            # then stops the sampler (and its powermetrics child) in order.
            start_new_session=True,
        )
    return SamplerHandle(run_dir, process, names, 0)


def available_sources() -> dict[str, SourceStatus]:
    """Every source, probed in this process (for `cnnprof doctor`)."""
    working, statuses = probe_all(list(SOURCE_NAMES), SourceConfig(interval_ms=100, target_pid=os.getpid()))
    for source in working.values():
        source.close()
    return statuses


def _label(entry: dict[str, Any]) -> str:
    return SourceStatus(bool(entry.get("ok")), str(entry.get("reason", ""))).label()


def _log_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _last_line(path: Path) -> str:
    return next((line.strip() for line in reversed(_log_lines(path)) if line.strip()), "")


def _warnings(path: Path) -> list[str]:
    found = [line.removeprefix("WARNING: ") for line in _log_lines(path) if line.startswith("WARNING: ")]
    unique = list(dict.fromkeys(found))
    if len(unique) > MAX_WARNINGS:
        unique = unique[:MAX_WARNINGS] + [f"... and {len(unique) - MAX_WARNINGS} more"]
    return unique
