"""Stack profilers for one run: a sampler for the timeline of stack samples (cnnprof's signal
sampler by default, or pyinstrument), cProfile for the hot-function table, or both.

Files of the run directory (the run's end, also by an exception or Ctrl-C, since `RunSession`
stops its observers in every case, completes the sample stream `samples.stream.jsonl` and writes
profile.pstats; the first reader writes the others from the stream, traces/tables.py):

* `samples.parquet`: one row per stack sample: `t_ns` = the sample interval's **start**
  relative to t0, `dt_ns` = its length (so `[t_ns, t_ns + dt_ns)` tile the profiled time and the
  stack `stack_id` is the one seen at the interval's end, which is what both samplers charge the
  interval to), `stack_id` = index into `stacks.json["stacks"]`.
* `stacks.json`: `{"frames": [{"function", "file", "line", "first_line", "library"}],
  "stacks": [[frame id, ...] root -> leaf, ...]}`. A frame is one *line* of one function: `line` is
  the line executing in that frame when sampled (the call site of the child, e.g. the `.item()`
  line), `first_line` the function's `def` line (group by `(file, function, first_line)` for a
  function-level flame chart). `function` is `Class.method` where pyinstrument saw the class.
  C functions (pyinstrument only) are `file == "<built-in>"`, `line == 0`. `library` marks frames in site-packages, the
  standard library, torch, mlx, `<built-in>` / `<frozen ...>`, and cnnprof's own machinery (all of
  cnnprof except `cnnprof/models/`, whose loops are the user's code in `cnnprof run`); they are
  kept, only marked. pyinstrument's per-thread root pseudo-frame (`<thread>`) is dropped.
* `profile.pyisession`: the raw session through pyinstrument's own `Session.save`
  (`pyinstrument --load profile.pyisession` or `Session.load` reads it back); for the signal
  sampler it is rebuilt from the stream (its frames in pyinstrument's identifier format).
* `profile.pstats`: cProfile's table (`pstats.Stats("profile.pstats")`).

The timeline samplers (`--profiler`):
* `sampler` (the default; profiler/sampler.py): a SIGALRM timer every `interval_ms` of wall time;
  the handler reads the main thread's Python stack. Costs per sample, not per call; sees Python
  frames only (a long C call is time on the line that made it). Each sample's end is its
  `perf_counter_ns()`, the run's clock, so no anchoring is needed. If SIGALRM or the real-time
  timer is already taken (or not on the main thread, or on Windows) it falls back to pyinstrument
  and says so in run.json's profiler notes.
* `pyinstrument`: a C profile function on every Python call and return that takes a sample once
  `interval_ms` has passed. Sees C functions as leaves (`<built-in>`), which the diagnosis uses to
  find unhooked syncs and host-to-device copies; costs on every Python call.

The clock of pyinstrument's samples. Its sampler measures each sample's duration with
`timeit.default_timer`, which is `time.perf_counter`, the run's clock. The end of sample i is
`anchor + sum(dt_0..dt_i)`, where the anchor is the sampler's own start time
(`StackSampler.last_profile_time`, read right after `Profiler.start()`). We also take
`perf_counter_ns()` right before `Profiler.start()` and use that if the sampler's attribute is
missing or implausible (pyinstrument internals may change); the two differ by the time start()
takes, tens of microseconds, plus pyinstrument's one-off timer-overhead check on its first start.
pyinstrument runs with `async_mode="disabled"` (no context-variable tracking: cheaper) and
samples only the thread that started it.

`both` = cProfile + the signal sampler, on any Python (they do not share anything). If the
sampler is unavailable, pyinstrument takes its place from Python 3.12; before 3.12 cProfile and
pyinstrument would fight over the thread's one profile function (`PyEval_SetProfile`: the second
started silently replaces the first), so there `both` keeps cProfile alone and says so.

Overhead at the default 1 ms interval (docs/BENCHMARKS.md has the runs): the signal sampler
costs ~15-35 us per sample (the handler's own measured time is in run.json as
`sampler_self_s`), about +3 % on a launch-bound `--loop tuned` CUDA epoch on the H100, where
pyinstrument costs +10-20 %; pyinstrument and cProfile cost per Python call, so their overhead
follows the rate of Python calls (a loop of tiny Python calls: each about +100 %).

Also not handled: a profiled script that calls `sys.setprofile` or starts its own cProfile takes
over the thread's profile function and ends pyinstrument's sampling on 3.11; one that installs a
SIGALRM handler ends the signal sampler's (that one is noted in run.json).
"""

from __future__ import annotations

import cProfile
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..traces import schema
from ..traces.streams import SAMPLES_STREAM, LineStream
from ..traces.tables import PENDING_PYISESSION
from ..traces.writer import replace_atomically
from . import DEFAULT_PROFILER, PROFILER_MODES
from .library import LibraryClassifier
from .sampler import ATTR_SEP, IDENT_SEP, FrameRecord, SamplerUnavailable, SignalSampler
from .stack_tables import RecordStreamer, SampleStreamer, StackTables

if TYPE_CHECKING:
    from .session import RunSession

MODES, DEFAULT_MODE = PROFILER_MODES, DEFAULT_PROFILER

# pyinstrument's own session file repeats the whole stack of every sample as text: ~2 kB a
# sample for a torch loop (55 MB for 26,000 samples of a 4-minute CPU run). Past this many samples
# (~100 MB) it is left out; samples.parquet + stacks.json keep the same samples in a few MB.
PYISESSION_MAX_SAMPLES = 50_000
PYISESSION_BYTES_PER_SAMPLE = 2_100

# Before 3.12 cProfile and pyinstrument fight over the one profile function of the thread.
CPROFILE_USES_MONITORING = sys.version_info >= (3, 12)




def records_to_tables(
    records: Iterable[FrameRecord],
    anchor_ns: int,
    t0_ns: int,
    is_library: LibraryClassifier | None = None,
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """pyinstrument frame records -> (samples columns, stacks.json dict) on the run's clock.

    Sample i covers `[anchor + sum(dt_0..dt_{i-1}), anchor + sum(dt_0..dt_i))`; the cumulative sum
    is kept in float seconds and rounded once per sample, so rounding never accumulates.
    """
    tables = StackTables(is_library or LibraryClassifier())
    t_col: list[int] = []
    dt_col: list[int] = []
    id_col: list[int] = []
    cum = 0.0
    prev_end = anchor_ns
    for call_stack, seconds in records:
        sid = tables.stack_id(call_stack)
        cum += seconds
        end = anchor_ns + round(cum * 1e9)
        t_col.append(prev_end - t0_ns)
        dt_col.append(end - prev_end)
        id_col.append(sid)
        prev_end = end
    return {"t_ns": t_col, "dt_ns": dt_col, "stack_id": id_col}, {"frames": tables.frames, "stacks": tables.stacks}


class StackObserver:
    """The run observer for the stack profilers (`--profiler`)."""

    name = "profiler"

    def __init__(self, mode: str = DEFAULT_MODE, interval_ms: float = 1.0) -> None:
        if mode not in MODES:
            raise ValueError(f"profiler mode must be one of {', '.join(MODES)}, not {mode!r}")
        if interval_ms <= 0:
            raise ValueError("interval_ms must be > 0")
        self.mode = mode
        self.interval_ms = interval_ms
        self._pyi: Any = None
        self._sampler: SignalSampler | None = None
        self._cprofile: cProfile.Profile | None = None
        self._anchor_ns = 0
        self._timeline: str | None = None
        self._notes: list[str] = []
        self._streamer: SampleStreamer | None = None
        self._records: RecordStreamer | None = None
        self._stream: LineStream | None = None

    def start(self, session: RunSession) -> None:
        caller = sys._getframe(1)
        if self.mode in ("sampler", "both"):
            sampler = SignalSampler(self.interval_ms / 1e3)
            try:
                sampler.start(caller)
            except SamplerUnavailable as exc:
                # pyinstrument shares the thread's one profile function with cProfile only from 3.12.
                fallback = self.mode == "sampler" or CPROFILE_USES_MONITORING
                self._notes.append(
                    f"signal sampler unavailable ({exc}); "
                    + ("timeline from pyinstrument instead" if fallback else "no timeline (cProfile only)")
                )
                if fallback:
                    self._start_pyinstrument(caller, session)
            else:
                self._sampler, self._anchor_ns, self._timeline = sampler, sampler.start_ns, "sampler"
                self._stream = LineStream(session.run_dir / SAMPLES_STREAM)
                self._streamer = SampleStreamer(sampler, self._stream, LibraryClassifier(), _session_info(sampler))
                session.flusher.add(self._streamer.flush)
        elif self.mode == "pyinstrument":
            self._start_pyinstrument(caller, session)
        if self.mode in ("cprofile", "both"):
            self._cprofile = cProfile.Profile()
            self._cprofile.enable()

    def _start_pyinstrument(self, caller: Any, session: RunSession) -> None:
        from pyinstrument import Profiler

        # The timing thread spares a clock read on every Python call and return, pyinstrument's
        # main per-event cost (measured: 1.17x -> 1.12x on a launch-bound CPU torch loop).
        self._pyi = Profiler(interval=self.interval_ms / 1e3, async_mode="disabled", use_timing_thread=True)
        before = time.perf_counter_ns()
        self._pyi.start(caller_frame=caller, target_description=f"cnnprof run {session.run_dir.name}")
        self._anchor_ns = _sampler_anchor_ns(before)
        self._timeline = "pyinstrument"
        # pyinstrument keeps its samples in its session's record list: streamed from there while
        # it runs, so that a killed run keeps them too (the list is pyinstrument's own attribute).
        live = getattr(getattr(self._pyi, "_active_session", None), "frame_records", None)
        if isinstance(live, list):
            self._stream = LineStream(session.run_dir / SAMPLES_STREAM)
            self._records = RecordStreamer(live, self._anchor_ns, self._stream, LibraryClassifier())
            session.flusher.add(self._records.flush)
        else:
            self._notes.append(
                "pyinstrument's samples reach the sample stream at the run's end only (its session's "
                "record list was not found): a run killed before its end loses its stacks"
            )

    def stop(self, session: RunSession) -> dict[str, Any]:
        """Stops the profilers and completes the sample stream. The tables (samples.parquet,
        stacks.json) and the signal sampler's profile.pyisession are the first reader's to
        write from the stream (traces/tables.py): the run's end stays free of pyarrow and pandas."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "interval_ms": self.interval_ms,
            "timeline": self._timeline,
            "files": [],
            "notes": self._notes,
        }
        errors: list[str] = []
        if self._cprofile is not None:
            self._cprofile.disable()
        run_dir = session.run_dir
        if self._pyi is not None:
            self._stop_pyinstrument(session, out, errors)
        elif self._sampler is not None:
            sampler = self._sampler
            sampler.stop()
            if self._streamer is not None:
                session.flusher.remove(self._streamer.flush)
                try:
                    self._streamer.flush()
                except Exception as exc:
                    errors.append(f"sample stream: {type(exc).__name__}: {exc}")
            out["notes"] += sampler.notes
            out["sampler_self_s"] = sampler.handler_ns / 1e9
            out["sampler_overruns"] = sampler.overruns
            out["samples"] = sampler.sample_count
            out["sampled_s"] = (sampler.end_ns - sampler.start_ns) / 1e9
            out["anchor_ns"] = self._anchor_ns - session.t0_perf_ns
            if sampler.sample_count <= PYISESSION_MAX_SAMPLES:
                session.record.pending.append(PENDING_PYISESSION)
            else:
                out["notes"].append(_pyisession_left_out(sampler.sample_count))
        if self._cprofile is not None:
            try:
                replace_atomically(run_dir / schema.PSTATS, self._cprofile.dump_stats)
                out["files"].append(schema.PSTATS)
            except Exception as exc:
                errors.append(f"{schema.PSTATS}: {type(exc).__name__}: {exc}")
        if self._stream is not None:
            self._stream.close()
        self._pyi = self._sampler = self._cprofile = None
        self._streamer = self._records = self._stream = None
        if errors:
            out["errors"] = errors
        return out

    def _stop_pyinstrument(self, session: RunSession, out: dict[str, Any], errors: list[str]) -> None:
        """pyinstrument's last samples go to the stream, its session to profile.pyisession."""
        if self._records is not None:
            session.flusher.remove(self._records.flush)
        try:
            pyi_session = self._pyi.stop() if self._pyi.is_running else self._pyi.last_session
        except Exception as exc:
            errors.append(f"pyinstrument stop: {type(exc).__name__}: {exc}")
            return
        if pyi_session is None:
            return
        records = pyi_session.frame_records
        try:
            if self._records is None:  # not streamed while it ran: all of it now
                self._stream = LineStream(session.run_dir / SAMPLES_STREAM)
                self._records = RecordStreamer(records, self._anchor_ns, self._stream, LibraryClassifier())
            self._records.flush()
            out["samples"] = self._records.samples
            out["sampled_s"] = self._records.sampled_s
            out["anchor_ns"] = self._anchor_ns - session.t0_perf_ns
        except Exception as exc:
            errors.append(f"samples: {type(exc).__name__}: {exc}")
        if len(records) > PYISESSION_MAX_SAMPLES:
            out["notes"].append(_pyisession_left_out(len(records)))
            return
        try:
            replace_atomically(session.run_dir / schema.PYISESSION, pyi_session.save)
            out["files"].append(schema.PYISESSION)
        except Exception as exc:
            errors.append(f"{schema.PYISESSION}: {type(exc).__name__}: {exc}")


def _pyisession_left_out(samples: int) -> str:
    return (
        f"{schema.PYISESSION} left out: {samples:,} samples would make it about "
        f"{samples * PYISESSION_BYTES_PER_SAMPLE / 1e9:.1f} GB; {schema.SAMPLES} and "
        f"{schema.STACKS} hold every sample"
    )


def pyisession_from_samples(samples: Any, stacks: dict[str, Any], info: dict[str, Any]) -> Any:
    """A pyinstrument Session of the signal sampler's samples as the sample stream kept them
    (`samples`: samples.parquet's Arrow table; `info`: the stream header's "session"), for
    profile.pyisession. Frame identifiers are rebuilt in pyinstrument's format."""
    from pyinstrument.session import Session

    root = (info.get("start_call_stack") or [f"MainThread{IDENT_SEP}<thread>{IDENT_SEP}0"])[0]
    idents = [
        f"{f['function']}{IDENT_SEP}{f['file']}{IDENT_SEP}{f.get('first_line', 0)}{ATTR_SEP}l{f['line']}"
        for f in stacks["frames"]
    ]
    call_stacks = [[root, *(idents[i] for i in stack)] for stack in stacks["stacks"]]
    dts = samples.column("dt_ns").to_pylist()
    records = [(call_stacks[sid], dt / 1e9) for sid, dt in zip(samples.column("stack_id").to_pylist(), dts)]
    interval = info.get("interval_s") or 0.001
    return Session.from_json(
        {
            "frame_records": records,
            "start_time": info.get("start_time") or 0.0,
            "duration": sum(dts) / 1e9,
            "min_interval": interval,
            "max_interval": interval,
            "sample_count": len(records),
            "start_call_stack": info.get("start_call_stack") or [root],
            "target_description": "cnnprof signal sampler",
            "cpu_time": None,
            "sys_path": info.get("sys_path") or sys.path,
            "sys_prefixes": Session.current_sys_prefixes(),
        }
    )


def _session_info(sampler: SignalSampler) -> dict[str, Any]:
    """What profile.pyisession needs of the sampler besides its samples (traces/tables.py)."""
    return {
        "start_time": sampler.start_time,
        "start_call_stack": sampler.start_call_stack,
        "interval_s": sampler.interval_s,
        "sys_path": sys.path,
    }


def _sampler_anchor_ns(before_ns: int) -> int:
    """The pyinstrument sampler's start time in perf_counter ns, or `before_ns` as a fallback."""
    try:
        from pyinstrument.stack_sampler import get_stack_sampler

        last = get_stack_sampler().last_profile_time
    except Exception:
        return before_ns
    if not isinstance(last, float) or last <= 0:
        return before_ns
    anchor = round(last * 1e9)
    # Plausible: at or after our own anchor, and not in the future.
    if before_ns - 1_000_000 <= anchor <= time.perf_counter_ns():
        return anchor
    return before_ns
