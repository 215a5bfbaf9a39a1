"""Stack samples as tables: frames and stacks interned as they come (`StackTables`), for the
tables written at the end (stacks.py) and for the sample stream written while the run goes
(`SampleStreamer`, read back by traces/streams.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from ..traces.streams import FRAME_KEYS, LineStream, sample_header_line, sample_line
from .sampler import ATTR_SEP, IDENT_SEP, SignalSampler


def parse_identifier(identifier: str) -> tuple[str, str, int, int]:
    """pyinstrument frame string -> (function, file, line executing, first line)."""
    ident, _, attrs = identifier.partition(ATTR_SEP)
    parts = ident.split(IDENT_SEP)
    function = parts[0]
    file = parts[1] if len(parts) > 1 else ""
    try:
        first_line = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        first_line = 0
    line = first_line
    cls = None
    if attrs:
        for attr in attrs.split(ATTR_SEP):
            if attr.startswith("l"):
                with contextlib.suppress(ValueError):
                    line = int(attr[1:])
            elif attr.startswith("c"):
                cls = attr[1:]
    if cls and "." not in function:
        function = f"{cls}.{function}"
    return function, file, line, first_line


class StackTables:
    """stacks.json as it grows: `frames` (one line of one function each) and `stacks` (frame ids,
    root -> leaf); `stack_id` interns a pyinstrument call stack. pyinstrument's per-thread root
    pseudo-frame is dropped."""

    def __init__(self, is_library: Callable[[str], bool]) -> None:
        self.is_library = is_library
        self.frames: list[dict[str, Any]] = []
        self.stacks: list[list[int]] = []
        self._frame_ids: dict[tuple[str, str, int, int], int] = {}
        self._by_identifier: dict[str, int | None] = {}
        self._stack_ids: dict[tuple[int, ...], int] = {}

    def stack_id(self, call_stack: Sequence[str]) -> int:
        ids = []
        for identifier in call_stack:
            fid = self._by_identifier.get(identifier, -1)
            if fid == -1:
                fid = self._by_identifier[identifier] = self._frame_id(identifier)
            if fid is not None:
                ids.append(fid)
        key = tuple(ids)
        sid = self._stack_ids.get(key)
        if sid is None:
            sid = self._stack_ids[key] = len(self.stacks)
            self.stacks.append(ids)
        return sid

    def _frame_id(self, identifier: str) -> int | None:
        function, file, line, first_line = parse_identifier(identifier)
        if file == "<thread>":
            return None  # pyinstrument's per-thread root, not code
        key = (function, file, line, first_line)
        fid = self._frame_ids.get(key)
        if fid is None:
            fid = self._frame_ids[key] = len(self.frames)
            library = self.is_library(file)
            self.frames.append(
                {"function": function, "file": file, "line": line, "first_line": first_line, "library": library}
            )
        return fid


class _Streamer:
    """Appends samples to the sample stream: each line carries the frames and stacks first seen
    since the previous one (traces/streams.py)."""

    def __init__(
        self, stream: LineStream, is_library: Callable[[str], bool], start_ns: int, session: dict[str, Any] | None
    ) -> None:
        self._stream = stream
        self._tables = StackTables(is_library)
        self._frames_done = 0
        self._stacks_done = 0
        stream.append([sample_header_line(start_ns, session)])

    def _append(self, ends: list[int], stack_ids: list[int]) -> None:
        tables = self._tables
        frames = [[f[k] for k in FRAME_KEYS] for f in tables.frames[self._frames_done :]]
        stacks = tables.stacks[self._stacks_done :]
        self._stream.append([sample_line(frames, stacks, ends, stack_ids)])
        self._frames_done, self._stacks_done = len(tables.frames), len(tables.stacks)


class SampleStreamer(_Streamer):
    """Appends what the signal sampler took since the last `flush` to the sample stream. Called
    from the session's flusher thread while the sampler runs: it only reads the sampler's arrays
    (see `SignalSampler.pending`), so the signal handler never waits on it."""

    def __init__(
        self,
        sampler: SignalSampler,
        stream: LineStream,
        is_library: Callable[[str], bool],
        session: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(stream, is_library, sampler.start_ns, session)
        self._sampler = sampler
        self._stack_map: list[int] = []  # the sampler's stack id -> the stream's
        self._samples_done = 0

    def flush(self) -> None:
        new_stacks, sids, ends = self._sampler.pending(len(self._stack_map), self._samples_done)
        if not len(ends):
            return
        self._stack_map += [self._tables.stack_id(stack) for stack in new_stacks]
        stack_map = self._stack_map
        self._append(ends.tolist(), [stack_map[s] for s in sids])
        self._samples_done += len(ends)


class RecordStreamer(_Streamer):
    """Appends pyinstrument's frame records (`(call stack, seconds)`, a list its profiler appends
    to while it runs) since the last `flush` to the sample stream. Sample i ends at `anchor +
    sum(seconds_0..seconds_i)`, the sum kept in float seconds and rounded once per sample (as
    stacks.records_to_tables does). Called from the session's flusher thread: a slice of the
    list is one step under the GIL."""

    def __init__(
        self,
        records: list[tuple[list[str], float]],
        anchor_ns: int,
        stream: LineStream,
        is_library: Callable[[str], bool],
    ) -> None:
        super().__init__(stream, is_library, anchor_ns, None)
        self._records = records
        self._anchor_ns = anchor_ns
        self._done = 0
        self._cum = 0.0

    def flush(self) -> None:
        new = self._records[self._done :]
        if not new:
            return
        ends, ids = [], []
        for call_stack, seconds in new:
            ids.append(self._tables.stack_id(call_stack))
            self._cum += seconds
            ends.append(self._anchor_ns + round(self._cum * 1e9))
        self._append(ends, ids)
        self._done += len(new)

    @property
    def samples(self) -> int:
        return self._done

    @property
    def sampled_s(self) -> float:
        return self._cum
