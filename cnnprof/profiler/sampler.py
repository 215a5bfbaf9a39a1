"""cnnprof's own stack sampler: a wall-clock timer signal reads the main thread's Python stack.

Why our own, next to pyinstrument: pyinstrument installs a profile function that runs on every
Python call and return, so its cost follows the rate of Python calls, not the sampling rate. A
launch-bound GPU loop makes thousands of small Python calls a millisecond: pyinstrument added
18-22 % to `--loop tuned` epochs on the H100 (docs/BENCHMARKS.md), which is the kind of loop a user
profiles. This sampler costs per sample only: `setitimer(ITIMER_REAL)` sends SIGALRM every
interval, and the Python-level handler, which CPython runs in the main thread between bytecodes,
walks the frames it is handed and stores an interned stack id and a `perf_counter_ns()`
timestamp. Out-of-process samplers (py-spy, austin) cost the target nothing, but need ptrace
rights (root on macOS, where most of our users are); this needs none.

What it sees, and what it does not (compared with pyinstrument):
* Python frames only. A C function is never a leaf: a long C call (a blocking `.item()`, a
  host-to-device copy, a convolution on the CPU) shows as time on the Python line that made it,
  because CPython runs signal handlers only between bytecodes, i.e. after the C call returns.
  That sample's duration still covers the whole call (each sample runs from the previous
  sample's timestamp to its own), so time is never lost, only charged to the calling line. The
  sync hooks (profiler/sync.py) name the blocking syncs themselves.
* The main thread only (pyinstrument, too, samples one thread).
* SIGALRM and the real-time interval timer belong to the sampler while it runs. If the process
  already uses them (a handler installed, or a timer armed) the sampler refuses to start and the
  caller falls back to pyinstrument. If profiled code installs its own SIGALRM handler later,
  sampling ends there; `stop` notices and leaves that handler in place.
* Blocking system calls in other threads: the handler is installed with SA_RESTART
  (`signal.siginterrupt(SIGALRM, False)`), so an interrupted read/futex restarts instead of
  failing with EINTR; and Linux delivers a process-directed signal to the main thread when it
  can. Python's own calls in the main thread retry after EINTR (PEP 475).

Where it ran: Linux only (CI and the development VM on Python 3.11, the H100 host on Python
3.12, torch CPU and CUDA, mlx CPU). Never exercised on macOS, where setitimer and SIGALRM behave
the same by POSIX, but whether Metal / MPS calls in flight tolerate the signal was not seen;
`--profiler pyinstrument` is the way around it if they do not.

Records come out in pyinstrument's frame-record format (`[identifier, ...], seconds`), so the
conversion to samples.parquet / stacks.json and the raw `profile.pyisession` are shared with the
pyinstrument path (profiler/stacks.py).
"""

from __future__ import annotations

import inspect
import signal
import sys
import threading
import time
from array import array
from types import FrameType
from typing import Any

FrameRecord = tuple[list[str], float]  # pyinstrument: (call stack root -> leaf, seconds)

IDENT_SEP = "\x00"  # pyinstrument frame identifier: "function\x00file\x00first line"
ATTR_SEP = "\x01"  # then attributes: "\x01c<class>", "\x01l<line>"


class SamplerUnavailable(RuntimeError):
    """The signal sampler cannot run in this process (the message says why)."""


def frame_identifier(code: Any, line: int) -> str:
    """pyinstrument's identifier for one line of one function (`Class.method` via co_qualname)."""
    ident = f"{code.co_name}{IDENT_SEP}{code.co_filename}{IDENT_SEP}{code.co_firstlineno}"
    owner, _, _ = getattr(code, "co_qualname", code.co_name).rpartition(".")
    if owner and "<locals>" not in owner:
        ident += f"{ATTR_SEP}c{owner}"
    return f"{ident}{ATTR_SEP}l{line}"


def thread_root(thread: threading.Thread) -> str:
    """pyinstrument's per-thread root pseudo-frame (dropped again when samples are written)."""
    return f"{thread.name}{IDENT_SEP}<thread>{IDENT_SEP}{thread.ident}"


def line_at(code: Any, offset: int) -> int:
    """The source line of the instruction at byte `offset` of `code` (0 if it has none)."""
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line or 0
    return code.co_firstlineno


# Code flags of frames that can be suspended and resumed under another caller.
_RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def _outwards(frame: FrameType | None) -> list[FrameType]:
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def _free(handler: Any) -> bool:
    return handler in (signal.SIG_DFL, signal.SIG_IGN, None)


class SignalSampler:
    """Samples the main thread's stack every `interval_s` of wall time, from a SIGALRM handler."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.start_ns = 0
        self.start_time = 0.0
        self.start_call_stack: list[str] = []
        self.notes: list[str] = []
        self.overruns = 0  # signals that arrived while the handler was still running
        self.handler_ns = 0  # time spent inside the handler: the sampler's own cost, measured
        # One interned key per distinct stack and two flat arrays per sample keep a long run's
        # memory to ~16 bytes a sample.
        self._stack_codes: list[tuple[tuple[int, ...], list[Any]]] = []  # (key, code objects)
        self._stack_ids: dict[tuple[int, ...], int] = {}
        self._sample_stack = array("l")
        self._sample_end_ns = array("q")
        self._chain: list[FrameType] = []
        self._chain_key: list[int] = []
        self._where: dict[int, int] = {}
        self._previous: Any = None
        self._handler: Any = None
        self._root = ""
        self._pending_cache: dict[tuple[int, int], str] = {}

    # -- life cycle --------------------------------------------------------------------------
    def start(self, caller: FrameType | None) -> None:
        """Arms the timer; raises SamplerUnavailable (nothing changed) when it cannot."""
        if not hasattr(signal, "setitimer"):
            raise SamplerUnavailable("this platform has no setitimer (Windows)")
        main = threading.main_thread()
        if threading.current_thread() is not main:
            raise SamplerUnavailable("signal handlers can only be installed from the main thread")
        previous = signal.getsignal(signal.SIGALRM)
        if not _free(previous):
            raise SamplerUnavailable(f"SIGALRM already has a handler ({previous!r})")
        if signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0):
            raise SamplerUnavailable("the real-time interval timer (ITIMER_REAL) is already armed")
        self._root = thread_root(main)
        outer = [frame_identifier(f.f_code, f.f_lineno or 0) for f in _outwards(caller)]
        self.start_call_stack = [self._root, *reversed(outer)]
        self._handler = self._make_handler()
        self._previous = previous
        signal.signal(signal.SIGALRM, self._handler)
        signal.siginterrupt(signal.SIGALRM, False)  # SA_RESTART: see the module doc
        self.start_time = time.time()
        self.start_ns = time.perf_counter_ns()
        signal.setitimer(signal.ITIMER_REAL, self.interval_s, self.interval_s)

    def stop(self) -> None:
        if self._handler is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0.0, 0.0)
        if signal.getsignal(signal.SIGALRM) is self._handler:
            signal.signal(signal.SIGALRM, self._previous)
        else:
            self.notes.append(
                "the profiled code installed its own SIGALRM handler, which ended stack sampling; "
                "use --profiler pyinstrument for code that uses SIGALRM"
            )
        self._handler = None
        self._chain.clear()  # the frames of the last sample (see _make_handler)
        self._where.clear()

    def _make_handler(self) -> Any:
        # The key of a stack is (id(code), f_lasti) per frame, root first: both are plain reads,
        # where `f_lineno` scans the line table and hashing a code object hashes its bytecode.
        # Lines are worked out once per key at the end. An id stands for its code object safely:
        # the first time a key is seen its code objects are stored, which keeps them alive.
        #
        # Most of a stack does not change between two samples (the loop, the epoch, the run are
        # the same frames), so the handler keeps the previous sample's frames (`chain`, root
        # first, with `where`: id(frame) -> index) and walks up from the new leaf only until it
        # meets one of them. Everything above that frame is unchanged: a running function's
        # callers stay suspended in the same call until it returns. Generator and coroutine
        # frames are never meeting points (a generator resumes under whichever frame calls
        # next(), so its callers can change); the walk passes through them. Holding the frames
        # keeps ids from being reused, and keeps a returned function's locals alive until the
        # next sample (one interval) at most; `stop` lets them go.
        #
        # Everything the handler touches is a local of this closure (no attribute lookups).
        stack_ids, stack_codes = self._stack_ids, self._stack_codes
        sample_stack, sample_end = self._sample_stack, self._sample_end_ns
        add_stack, add_end = sample_stack.append, sample_end.append
        now = time.perf_counter_ns
        chain, chain_key, where = self._chain, self._chain_key, self._where
        resumable = _RESUMABLE
        running = [False]

        def on_sigalrm(signum: int, frame: FrameType | None) -> None:
            # A signal that came in while we ran: fold it into the next sample. `running` is
            # cleared in the handler's last lines, which can still be interrupted (another thread
            # took the GIL meanwhile, and the interval passed): the handler's own frame says so.
            if running[0] or (frame is not None and frame.f_code is own_code):
                self.overruns += 1
                return
            running[0] = True
            # The time is read only now, once `running` is set: another Python signal handler
            # (torch's SIGCHLD one, a SIGTERM handler a child inherited) can run between any two
            # bytecodes of this one, and a SIGALRM inside *it* is not ours by its frame. Read
            # before the guard, this sample's time would be older than the nested one's, and
            # stored after it: the end times would go back, and a sample's dt come out negative.
            end = now()
            try:
                fresh = []
                keep = -1  # index in `chain` of the deepest frame still on the stack
                while frame is not None:
                    j = where.get(id(frame), -1)
                    if j >= 0 and chain[j] is frame:
                        keep = j
                        break
                    fresh.append(frame)
                    frame = frame.f_back
                for gone in chain[keep + 1 :]:
                    where.pop(id(gone), None)
                del chain[keep + 1 :]
                del chain_key[2 * keep + 2 :]
                if keep >= 0:
                    chain_key[2 * keep + 1] = chain[keep].f_lasti  # it may have moved on to another call
                for new in reversed(fresh):
                    code = new.f_code
                    if not code.co_flags & resumable:
                        where[id(new)] = len(chain)
                    chain.append(new)
                    chain_key.append(id(code))
                    chain_key.append(new.f_lasti)
                stack = tuple(chain_key)
                sid = stack_ids.get(stack)
                if sid is None:
                    sid = stack_ids[stack] = len(stack_codes)
                    stack_codes.append((stack, [f.f_code for f in chain]))
                add_stack(sid)
                add_end(end)
            except BaseException:
                # A KeyboardInterrupt (Ctrl-C is handled between bytecodes, this handler's too) can
                # land mid-update: start the next sample from scratch, and let it propagate. One
                # between the two appends would leave a stack id without its time, and pair every
                # later id with the previous sample's time: take it back.
                if len(sample_stack) > len(sample_end):
                    sample_stack.pop()
                chain.clear()
                chain_key.clear()
                where.clear()
                raise
            finally:
                self.handler_ns += now() - end
                running[0] = False

        own_code = on_sigalrm.__code__
        return on_sigalrm

    # -- results -----------------------------------------------------------------------------
    def _identifiers(self, stack: tuple[int, ...], codes: list[Any], cache: dict[tuple[int, int], str]) -> list[str]:
        """A stack (root first) as pyinstrument identifiers, after the thread's root."""
        out = [self._root]
        for depth, code in enumerate(codes):
            lasti = stack[2 * depth + 1]
            ident = cache.get((id(code), lasti))
            if ident is None:
                ident = cache[(id(code), lasti)] = frame_identifier(code, line_at(code, lasti))
            out.append(ident)
        return out

    def pending(self, stacks_done: int, samples_done: int) -> tuple[list[list[str]], array, array]:
        """What came since: the identifiers of the stacks after the first `stacks_done`, and the
        stack ids and end times of the samples after the first `samples_done`. Safe from another
        thread while sampling: each slice is one C call under the GIL, the samples are read before
        the stacks (the handler stores a new stack before a sample of it) and the end times
        before the ids (it appends the id first)."""
        n = len(self._sample_end_ns)
        ends = self._sample_end_ns[samples_done:n]
        sids = self._sample_stack[samples_done:n]
        codes = self._stack_codes[stacks_done:]
        cache = self._pending_cache
        return [self._identifiers(key, c, cache) for key, c in codes], sids, ends

    @property
    def sample_count(self) -> int:
        return len(self._sample_stack)

    @property
    def end_ns(self) -> int:
        return self._sample_end_ns[-1] if self._sample_end_ns else self.start_ns

    def records(self) -> list[FrameRecord]:
        """pyinstrument frame records: each sample runs from the previous one's end to its own.
        Safe while sampling (a pool worker writes its samples after each task, the timer still
        armed): it reads a snapshot, as `pending` does. Iterating the live arrays instead let a
        signal during the loop add a sample of a stack the list did not have yet (IndexError)."""
        stacks, sids, ends = self.pending(0, 0)
        out: list[FrameRecord] = []
        previous = self.start_ns
        for sid, end in zip(sids, ends):
            out.append((stacks[sid], (end - previous) / 1e9))
            previous = end
        return out

    def session(self, records: list[FrameRecord]) -> Any:
        """The samples as a pyinstrument Session (for `profile.pyisession`)."""
        from pyinstrument.session import Session

        return Session.from_json(
            {
                "frame_records": records,
                "start_time": self.start_time,
                "duration": (self.end_ns - self.start_ns) / 1e9,
                "min_interval": self.interval_s,
                "max_interval": self.interval_s,
                "sample_count": len(records),
                "start_call_stack": self.start_call_stack,
                "target_description": "cnnprof signal sampler",
                "cpu_time": None,
                "sys_path": sys.path,
                "sys_prefixes": Session.current_sys_prefixes(),
            }
        )
