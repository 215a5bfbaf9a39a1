"""Stack profilers for one run: pyinstrument for the timeline of stack samples, cProfile for the
hot-function table, or both.

Files written into the run directory at `stop` (also when the run ends by an exception or Ctrl-C,
since `RunSession` stops its observers in every case):

* `samples.parquet`: one row per pyinstrument sample: `t_ns` = the sample interval's **start**
  relative to t0, `dt_ns` = its length (so `[t_ns, t_ns + dt_ns)` tile the profiled time and the
  stack `stack_id` is the one seen at the interval's end, which is what pyinstrument charges the
  interval to), `stack_id` = index into `stacks.json["stacks"]`.
* `stacks.json`: `{"frames": [{"function", "file", "line", "first_line", "library"}],
  "stacks": [[frame id, ...] root -> leaf, ...]}`. A frame is one *line* of one function: `line` is
  the line executing in that frame when sampled (the call site of the child, e.g. the `.item()`
  line), `first_line` the function's `def` line (group by `(file, function, first_line)` for a
  function-level flame chart). `function` is `Class.method` where pyinstrument saw the class.
  C functions are `file == "<built-in>"`, `line == 0`. `library` marks frames in site-packages, the
  standard library, torch, mlx, `<built-in>` / `<frozen ...>`, and cnnprof's own machinery (all of
  cnnprof except `cnnprof/models/`, whose loops are the user's code in `cnnprof run`); they are
  kept, only marked. pyinstrument's per-thread root pseudo-frame (`<thread>`) is dropped.
* `profile.pyisession`: the raw session through pyinstrument's own `Session.save`
  (`pyinstrument --load profile.pyisession` or `Session.load` reads it back).
* `profile.pstats`: cProfile's table (`pstats.Stats("profile.pstats")`).

The clock. pyinstrument's sampler measures each sample's duration with `timeit.default_timer`,
which is `time.perf_counter`, the run's clock (`perf_counter_ns` is the same clock in ns). The end
of sample i is `anchor + sum(dt_0..dt_i)`, where the anchor is the sampler's own start time
(`StackSampler.last_profile_time`, read right after `Profiler.start()`). We also take
`perf_counter_ns()` right before `Profiler.start()` and use that if the sampler's attribute is
missing or implausible (pyinstrument internals may change); the two differ by the time start()
takes, tens of microseconds, plus pyinstrument's one-off timer-overhead check on its first start.

pyinstrument runs with `async_mode="disabled"` (no context-variable tracking: cheaper, and it can
share the thread with another profiler) and samples only the thread that started it.

`both` and Python 3.11. Before Python 3.12, cProfile and pyinstrument each install *the* profile
function of the thread (`PyEval_SetProfile`): the second one started silently replaces the first
(checked: pyinstrument then records 0 samples). From 3.12 cProfile uses `sys.monitoring` and the
two coexist. So `both` runs:
  * Python >= 3.12: cProfile + pyinstrument, as asked (CI and the development machine run 3.11;
    tests/test_stacks.py passed on Python 3.12.3 on the GPU machine, this path included);
  * Python 3.11: cProfile + a sampling thread (`_ThreadSampler`) that reads the main thread's
    stack from `sys._current_frames()` every `interval_ms`, writes the same samples/stacks files
    and a pyisession built from its records. It cannot see C functions as leaves (the time of a
    long `.item()` lands on the calling line instead), and it needs the GIL to take a sample, so
    while the main thread runs Python code samples come at most every `sys.getswitchinterval()`
    (5 ms) and a C call that holds the GIL delays the sample until it returns.

Overhead at the default 1 ms interval (benchmarks/sync_hook_cost.py "profilers", and
benchmarks/overhead.py for whole `cnnprof run`s; the figures are in sync_hook_cost.py's header):
a profile hook costs per Python call, so the overhead follows the rate of Python calls. A
seed-style CPU training loop: pyinstrument +5-40 %, cProfile ~0-5 %, both ~0-15 %; a loop of
tiny Python calls: pyinstrument and cProfile each about +100 %, both +50-200 %; `cnnprof run
--backend torch_cuda --loop seed` on an H100 (host-bound): pyinstrument x1.31, both x1.16,
cProfile x1.14 per epoch. `both` adds cProfile's deterministic per-call cost to the sampler's;
on 3.11 its sampler is the cheaper thread sampler, which is why it can cost less than
pyinstrument alone there.

Also not handled: a profiled script that calls `sys.setprofile` or starts its own cProfile takes
over the thread's profile function and ends our pyinstrument sampling (on 3.11).
"""

from __future__ import annotations

import contextlib
import cProfile
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..traces import schema
from ..traces.writer import write_json, write_table

if TYPE_CHECKING:
    from .session import RunSession

MODES = ("pyinstrument", "cprofile", "both", "none")

# pyinstrument's own session file repeats the whole stack of every sample as text: ~2 kB a
# sample for a torch loop (55 MB for 26,000 samples of a 4-minute CPU run). Past this many samples
# (~100 MB) it is left out; samples.parquet + stacks.json keep the same samples in a few MB.
PYISESSION_MAX_SAMPLES = 50_000
PYISESSION_BYTES_PER_SAMPLE = 2_100

# Before 3.12 cProfile and pyinstrument fight over the one profile function of the thread.
CPROFILE_USES_MONITORING = sys.version_info >= (3, 12)

FrameRecord = tuple[list[str], float]  # pyinstrument: (call stack root -> leaf, seconds)

_IDENT_SEP = "\x00"  # pyinstrument frame identifier: "function\x00file\x00first line"
_ATTR_SEP = "\x01"  # then attributes: "\x01c<class>", "\x01l<line>", "\x01h<hidden>"

_CNNPROF_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_CNNPROF_USER_DIR = os.path.join(_CNNPROF_DIR, "models") + os.sep


def _library_prefixes() -> tuple[str, ...]:
    paths = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(os.path.abspath(sysconfig.get_paths()[key]) + os.sep)
    for pkg in ("torch", "mlx"):
        module = sys.modules.get(pkg)
        for p in getattr(module, "__path__", []) or []:
            paths.add(os.path.abspath(p) + os.sep)
    return tuple(sorted(paths))


class LibraryClassifier:
    """Tells library frames from user frames by file name (cached per file)."""

    def __init__(self, prefixes: Sequence[str] | None = None) -> None:
        self.prefixes = tuple(prefixes) if prefixes is not None else _library_prefixes()
        self._cache: dict[str, bool] = {}

    def __call__(self, file: str) -> bool:
        hit = self._cache.get(file)
        if hit is None:
            hit = self._cache[file] = self._classify(file)
        return hit

    def _classify(self, file: str) -> bool:
        if file.startswith("<"):  # <built-in>, <frozen importlib._bootstrap>, <string>
            return True
        if "site-packages" in file or "dist-packages" in file:
            return True
        if file.startswith(_CNNPROF_DIR):
            return not file.startswith(_CNNPROF_USER_DIR)
        return file.startswith(self.prefixes)


def parse_identifier(identifier: str) -> tuple[str, str, int, int]:
    """pyinstrument frame string -> (function, file, line executing, first line)."""
    ident, _, attrs = identifier.partition(_ATTR_SEP)
    parts = ident.split(_IDENT_SEP)
    function = parts[0]
    file = parts[1] if len(parts) > 1 else ""
    try:
        first_line = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        first_line = 0
    line = first_line
    cls = None
    if attrs:
        for attr in attrs.split(_ATTR_SEP):
            if attr.startswith("l"):
                with contextlib.suppress(ValueError):
                    line = int(attr[1:])
            elif attr.startswith("c"):
                cls = attr[1:]
    if cls and "." not in function:
        function = f"{cls}.{function}"
    return function, file, line, first_line


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
    is_library = is_library or LibraryClassifier()
    frame_ids: dict[tuple[str, str, int, int], int] = {}
    frames: list[dict[str, Any]] = []
    by_identifier: dict[str, int | None] = {}
    stack_ids: dict[tuple[int, ...], int] = {}
    stacks: list[list[int]] = []
    t_col: list[int] = []
    dt_col: list[int] = []
    id_col: list[int] = []
    cum = 0.0
    prev_end = anchor_ns
    for call_stack, seconds in records:
        ids = []
        for identifier in call_stack:
            fid = by_identifier.get(identifier, -1)
            if fid == -1:
                function, file, line, first_line = parse_identifier(identifier)
                if file == "<thread>":
                    fid = None  # pyinstrument's per-thread root, not code
                else:
                    key = (function, file, line, first_line)
                    fid = frame_ids.get(key)
                    if fid is None:
                        fid = frame_ids[key] = len(frames)
                        frames.append(
                            {
                                "function": function,
                                "file": file,
                                "line": line,
                                "first_line": first_line,
                                "library": is_library(file),
                            }
                        )
                by_identifier[identifier] = fid
            if fid is not None:
                ids.append(fid)
        key_ids = tuple(ids)
        sid = stack_ids.get(key_ids)
        if sid is None:
            sid = stack_ids[key_ids] = len(stacks)
            stacks.append(list(key_ids))
        cum += seconds
        end = anchor_ns + round(cum * 1e9)
        t_col.append(prev_end - t0_ns)
        dt_col.append(end - prev_end)
        id_col.append(sid)
        prev_end = end
    return {"t_ns": t_col, "dt_ns": dt_col, "stack_id": id_col}, {"frames": frames, "stacks": stacks}


def _replace(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class _ThreadSampler:
    """Samples one thread's Python stack from a second thread (the 3.11 `both` timeline).

    Records pyinstrument-format frame records, so the same conversion and `Session.save` apply.
    """

    def __init__(self, interval_s: float, thread_id: int) -> None:
        self.interval_s = interval_s
        self.thread_id = thread_id
        self.records: list[FrameRecord] = []
        self.start_perf = 0.0
        self.start_time = 0.0
        self.start_call_stack: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cnnprof-stack-sampler", daemon=True)
        self._idents: dict[tuple[Any, int], str] = {}
        thread = threading.current_thread()
        self._root = f"{thread.name}{_IDENT_SEP}<thread>{_IDENT_SEP}{thread.ident}"

    def _identifier(self, frame: FrameType) -> str:
        code = frame.f_code
        key = (code, frame.f_lineno)
        ident = self._idents.get(key)
        if ident is None:
            ident = f"{code.co_name}{_IDENT_SEP}{code.co_filename}{_IDENT_SEP}{code.co_firstlineno}"
            qualname = getattr(code, "co_qualname", code.co_name)
            owner, _, _ = qualname.rpartition(".")
            if owner and "<locals>" not in owner:
                ident += f"{_ATTR_SEP}c{owner}"
            ident += f"{_ATTR_SEP}l{frame.f_lineno}"
            self._idents[key] = ident
        return ident

    def _stack(self, frame: FrameType | None) -> list[str]:
        stack = []
        while frame is not None:
            stack.append(self._identifier(frame))
            frame = frame.f_back
        stack.append(self._root)
        stack.reverse()
        return stack

    def start(self, caller: FrameType | None) -> None:
        self.start_call_stack = self._stack(caller)
        self.start_time = time.time()
        self.start_perf = time.perf_counter()
        self._last = self.start_perf
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            frame = sys._current_frames().get(self.thread_id)
            now = time.perf_counter()
            if frame is None:
                break
            self.records.append((self._stack(frame), now - self._last))
            self._last = now
            del frame

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def session(self) -> Any:
        from pyinstrument.session import Session

        return Session.from_json(
            {
                "frame_records": self.records,
                "start_time": self.start_time,
                "duration": self._last - self.start_perf,
                "min_interval": self.interval_s,
                "max_interval": self.interval_s,
                "sample_count": len(self.records),
                "start_call_stack": self.start_call_stack,
                "target_description": "cnnprof thread sampler (Python < 3.12, profiler=both)",
                "cpu_time": None,
                "sys_path": sys.path,
                "sys_prefixes": Session.current_sys_prefixes(),
            }
        )


class StackObserver:
    """The run observer for the stack profilers (`--profiler`)."""

    name = "profiler"

    def __init__(self, mode: str = "pyinstrument", interval_ms: float = 1.0) -> None:
        if mode not in MODES:
            raise ValueError(f"profiler mode must be one of {', '.join(MODES)}, not {mode!r}")
        if interval_ms <= 0:
            raise ValueError("interval_ms must be > 0")
        self.mode = mode
        self.interval_ms = interval_ms
        self._pyi: Any = None
        self._sampler: _ThreadSampler | None = None
        self._cprofile: cProfile.Profile | None = None
        self._anchor_ns = 0
        self._timeline: str | None = None
        self._notes: list[str] = []

    def start(self, session: RunSession) -> None:
        timeline = self.mode in ("pyinstrument", "both")
        table = self.mode in ("cprofile", "both")
        caller = sys._getframe(1)
        if timeline and (self.mode == "pyinstrument" or CPROFILE_USES_MONITORING):
            from pyinstrument import Profiler

            # The timing thread spares a clock read on every Python call and return, pyinstrument's
            # main per-event cost (measured: 1.17x -> 1.12x on a launch-bound CPU torch loop).
            self._pyi = Profiler(interval=self.interval_ms / 1e3, async_mode="disabled", use_timing_thread=True)
            before = time.perf_counter_ns()
            self._pyi.start(caller_frame=caller, target_description=f"cnnprof run {session.run_dir.name}")
            self._anchor_ns = _sampler_anchor_ns(before)
            self._timeline = "pyinstrument"
        elif timeline:
            self._sampler = _ThreadSampler(self.interval_ms / 1e3, threading.get_ident())
            self._sampler.start(caller)
            self._anchor_ns = round(self._sampler.start_perf * 1e9)
            self._timeline = "thread-sampler"
            self._notes.append(
                "profiler=both on Python < 3.12: cProfile owns the thread's profile function, so the "
                "timeline comes from a sampling thread (no C-function leaves; at most one sample per "
                f"{sys.getswitchinterval() * 1e3:.0f} ms while Python code holds the GIL)"
            )
        if table:
            self._cprofile = cProfile.Profile()
            self._cprofile.enable()

    def stop(self, session: RunSession) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "interval_ms": self.interval_ms,
            "timeline": self._timeline,
            "files": [],
            "notes": self._notes,
        }
        errors: list[str] = []
        # Stop everything first (cheap), then write (slow): the run's own code is done by now.
        if self._cprofile is not None:
            self._cprofile.disable()
        records: list[FrameRecord] | None = None
        pyi_session: Any = None
        if self._pyi is not None:
            try:
                pyi_session = self._pyi.stop() if self._pyi.is_running else self._pyi.last_session
            except Exception as exc:
                errors.append(f"pyinstrument stop: {type(exc).__name__}: {exc}")
            if pyi_session is not None:
                records = pyi_session.frame_records
        elif self._sampler is not None:
            self._sampler.stop()
            records = self._sampler.records
            try:
                pyi_session = self._sampler.session()
            except Exception as exc:
                errors.append(f"pyisession: {type(exc).__name__}: {exc}")

        run_dir = session.run_dir
        if records is not None:
            try:
                columns, stacks = records_to_tables(records, self._anchor_ns, session.t0_perf_ns)
                write_table(run_dir / schema.SAMPLES, columns, schema.SAMPLES_SCHEMA)
                write_json(run_dir / schema.STACKS, stacks)
                out["files"] += [schema.SAMPLES, schema.STACKS]
                out["samples"] = len(columns["t_ns"])
                out["sampled_s"] = sum(columns["dt_ns"]) / 1e9
                out["anchor_ns"] = self._anchor_ns - session.t0_perf_ns
            except Exception as exc:
                errors.append(f"samples: {type(exc).__name__}: {exc}")
        if pyi_session is not None and len(records or ()) > PYISESSION_MAX_SAMPLES:
            out["notes"].append(
                f"{schema.PYISESSION} left out: {len(records or ()):,} samples would make it about "
                f"{len(records or ()) * PYISESSION_BYTES_PER_SAMPLE / 1e9:.1f} GB; {schema.SAMPLES} and "
                f"{schema.STACKS} hold every sample"
            )
        elif pyi_session is not None:
            try:
                _replace(run_dir / schema.PYISESSION, pyi_session.save)
                out["files"].append(schema.PYISESSION)
            except Exception as exc:
                errors.append(f"{schema.PYISESSION}: {type(exc).__name__}: {exc}")
        if self._cprofile is not None:
            try:
                _replace(run_dir / schema.PSTATS, self._cprofile.dump_stats)
                out["files"].append(schema.PSTATS)
            except Exception as exc:
                errors.append(f"{schema.PSTATS}: {type(exc).__name__}: {exc}")
        self._pyi = self._sampler = self._cprofile = None
        if errors:
            out["errors"] = errors
        return out


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
