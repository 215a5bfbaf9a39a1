"""What the live view knows about a run while it goes, read from the run's own records: the
telemetry stream file (tailed from where the last read stopped), run.json, and the spans recorded
so far (the in-process recorder's rows, or a span stream file). Nothing here samples anything.

A tick costs what arrived since the previous one: a few hundred telemetry lines and the new span
rows, parsed in plain Python (no pandas: the training process may not have it imported yet).
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..traces.streams import SPANS_STREAM, TELEMETRY_STREAM

RUN_JSON = "run.json"  # traces.schema's name; that module would import pyarrow

# Rates (steps/s, syncs/s) are over the last RATE_WINDOW_S of the run's clock: long enough to
# smooth a loop's jitter, short enough to follow a change of phase.
RATE_WINDOW_S = 5.0
HISTORY = 60  # telemetry values kept per metric, for the sparklines
RECENT_STEPS = 50  # the steps the verdict judges
PARTS_KEPT = 8192  # part spans kept for splitting the recent steps

# The parts of a step the panel names, in order; whatever the spans don't cover is `other`.
PARTS = ("data", "forward", "backward", "optimizer", "sync")

# A span row as the recorder keeps it: (kind, name, start_ns, end_ns, epoch, batch, caller, attrs).
Row = Sequence[Any]


@dataclass
class Step:
    end_ns: int
    seconds: float
    split: dict[str, float]  # PARTS + "other" -> seconds


@dataclass
class LiveState:
    run_dir: Path
    status: str = "running"
    kind: str = ""
    label: str = ""
    t0_perf_ns: int = 0
    pid: int | None = None  # the observed process (run.json)
    now_ns: int = 0  # the run's clock (perf_counter_ns) at the last tick
    telemetry: dict[str, float] = field(default_factory=dict)  # "source.metric" -> latest value
    history: dict[str, deque[float]] = field(default_factory=dict)
    steps: int = 0
    steps_per_s: float | None = None
    last_step: Step | None = None
    recent_steps: deque[Step] = field(default_factory=lambda: deque(maxlen=RECENT_STEPS))
    syncs: int = 0
    syncs_per_s: float | None = None
    progress: str = ""  # "epoch 2/10 train 37/105", from the loop's events when in-process

    @property
    def elapsed_s(self) -> float:
        return max(0.0, (self.now_ns - self.t0_perf_ns) / 1e9) if self.t0_perf_ns else 0.0


class TelemetryTail:
    """Reads a stream file's new complete lines on each call (a torn last line waits for the
    next call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._header = True

    def read(self) -> list[tuple[int, str, float]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self._offset += end
        rows: list[tuple[int, str, float]] = []
        for line in data[:end].decode("utf-8", "replace").splitlines():
            if self._header:
                self._header = False
                continue
            parts = line.split(",")
            if len(parts) != 4:
                continue
            try:
                rows.append((int(parts[0]), f"{parts[1]}.{parts[2]}", float(parts[3])))
            except ValueError:
                continue
        return rows


class SpanTail:
    """The span stream's new rows on each call: one JSON line per flush, `{"spans": [[kind, name,
    start_ns, end_ns, epoch, batch, caller, attrs], ...]}`, absolute times (traces/streams.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.rows: list[Row] = []

    def read(self) -> list[Row]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return self.rows
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            try:
                spans = json.loads(line).get("spans")
            except (ValueError, AttributeError):
                continue
            if isinstance(spans, list):
                self.rows += [r for r in spans if isinstance(r, list) and len(r) == 8 and isinstance(r[2], int)]
        return self.rows


class StepTracker:
    """Step boundaries and syncs from span rows, as they arrive.

    A step is a `batch` span named `train` (cnnprof's own loops), else the time between two
    `mark` hooks (`cnnprof.step()`), else between two optimizer-step hooks. Its split sums the
    spans of each part that fall inside it; sync time nested in another part counts as sync only.
    Reads of CPU tensors (sync spans with device `cpu`) are no syncs and stay in their part.
    """

    def __init__(self) -> None:
        self._parts: deque[tuple[str, int, int]] = deque(maxlen=PARTS_KEPT)  # (part, start, end)
        self._boundaries: deque[int] = deque()  # step end times in the rate window
        self._sync_ends: deque[int] = deque()  # device sync end times in the rate window
        self._boundary_kind: str | None = None
        self._last_boundary: int | None = None
        self._pending: list[tuple[int, int]] = []  # (begin, end) of the steps since the last take()
        self.count = 0
        self.sync_count = 0

    def feed(self, rows: Sequence[Row]) -> None:
        parts, sync_ends = self._parts, self._sync_ends
        for row in rows:
            kind = row[0]
            if kind == "sync":
                if not _on_cpu(row):
                    self.sync_count += 1
                    sync_ends.append(row[3])
                    parts.append(("sync", row[2], row[3]))
            elif kind in _PART_SET:
                parts.append((kind, row[2], row[3]))
            elif kind == "hook":  # an optimizer-step hook is both a part and a boundary
                if row[1] in _PART_SET:
                    parts.append((row[1], row[2], row[3]))
                if row[1] in _BOUNDARY_RANK:
                    self._boundary(row[1], row[2], row[3])
            elif kind == "batch" and row[1] == "train":
                self._boundary("batch", row[2], row[3])

    def _boundary(self, boundary: str, start: int, end: int) -> None:
        if self._boundary_kind is None or _BOUNDARY_RANK[boundary] < _BOUNDARY_RANK[self._boundary_kind]:
            self._boundary_kind, self._last_boundary = boundary, None
        if boundary != self._boundary_kind:
            return
        begin = start if boundary == "batch" else self._last_boundary
        self._last_boundary = end
        if begin is None:
            return
        self.count += 1
        self._boundaries.append(end)
        self._pending.append((begin, end))

    def take(self) -> list[Step]:
        """The steps finished since the last call, split into parts; only the last RECENT_STEPS
        of them (all the panel and the verdict look at), so a tick's cost does not grow with the
        step rate. A part span belongs to the step it ends in, clipped to it."""
        pending, self._pending = self._pending[-RECENT_STEPS:], []
        if not pending:
            return []
        window: list[tuple[str, int, int]] = []
        for part in reversed(self._parts):  # appended as they end: the newest are at the right
            if part[2] <= pending[0][0]:
                break
            window.append(part)
        window.reverse()
        ends = [e for _, _, e in window]
        steps = []
        for begin, end in pending:
            inside = window[bisect_right(ends, begin) : bisect_right(ends, end)]
            steps.append(Step(end, (end - begin) / 1e9, _split(begin, end, inside)))
        return steps

    def steps_per_s(self, now_ns: int) -> float | None:
        return _rate(self._boundaries, now_ns, self.count)

    def syncs_per_s(self, now_ns: int) -> float | None:
        return _rate(self._sync_ends, now_ns, self.sync_count)


def _split(begin: int, end: int, parts: list[tuple[str, int, int]]) -> dict[str, float]:
    inside = [(p, max(s, begin), e) for p, s, e in parts if s < end]
    syncs = [(s, e) for p, s, e in inside if p == "sync"]
    split = dict.fromkeys(PARTS, 0.0)
    for part, s, e in inside:
        ns = e - s
        if part != "sync" and syncs:
            ns -= sum(max(0, min(e, se) - max(s, ss)) for ss, se in syncs)
        split[part] += max(0, ns) / 1e9
    split["other"] = max(0.0, (end - begin) / 1e9 - sum(split.values()))
    return split


def _rate(ends: deque[int], now_ns: int, seen: int) -> float | None:
    """Events per second over the last RATE_WINDOW_S: the intervals between the events in the
    window over the time from the first of them to now (so a stall makes the rate fall); None
    before the first event. Drops the events that have left the window."""
    if not seen:
        return None
    since = now_ns - int(RATE_WINDOW_S * 1e9)
    while ends and ends[0] <= since:
        ends.popleft()
    if len(ends) < 2 or now_ns <= ends[0]:
        return 0.0
    return (len(ends) - 1) / ((now_ns - ends[0]) / 1e9)


def _on_cpu(row: Row) -> bool:
    """A sync hook's read of a CPU tensor waits on nothing: it is not a sync (DESIGN.md)."""
    attrs = row[7] if len(row) > 7 else None
    return isinstance(attrs, dict) and attrs.get("device") == "cpu"


_BOUNDARY_RANK = {"batch": 0, "mark": 1, "optimizer": 2}
_PART_SET = frozenset(PARTS) - {"sync"}


class LiveReader:
    """Turns a run's records into a `LiveState`, one `tick()` at a time.

    `span_rows` gives the span rows recorded so far (the in-process recorder's list; it only
    grows); without it they come from the run's span stream file, which the session appends to
    twice a second.
    """

    def __init__(
        self,
        run_dir: Path,
        span_rows: Callable[[], Sequence[Row]] | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.state = LiveState(run_dir)
        self._tail = TelemetryTail(run_dir / TELEMETRY_STREAM)
        self._span_rows = span_rows or SpanTail(run_dir / SPANS_STREAM).read
        self._seen_rows = 0
        self._steps = StepTracker()
        self._clock = clock

    def tick(self) -> LiveState:
        st = self.state
        self._read_meta()
        st.now_ns = self._clock()
        for _t_ns, key, value in self._tail.read():
            st.telemetry[key] = value
            st.history.setdefault(key, deque(maxlen=HISTORY)).append(value)
        rows = self._span_rows()
        new = rows[self._seen_rows : len(rows)]
        self._seen_rows += len(new)
        self._steps.feed(new)
        tracker = self._steps
        for step in tracker.take():
            st.recent_steps.append(step)
            st.last_step = step
        st.steps, st.syncs = tracker.count, tracker.sync_count
        st.steps_per_s = tracker.steps_per_s(st.now_ns)
        st.syncs_per_s = tracker.syncs_per_s(st.now_ns)
        return st

    def _read_meta(self) -> None:
        try:
            meta = json.loads((self.state.run_dir / RUN_JSON).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # written atomically, so this is a run directory that is not there (yet)
        st = self.state
        st.status = str(meta.get("status", st.status))
        st.kind = str(meta.get("kind", ""))
        st.t0_perf_ns = int(meta.get("t0_perf_ns") or 0)
        st.pid = meta.get("pid") if isinstance(meta.get("pid"), int) else None
        # The raw JSON, not traces.record: that module's writer would pull pyarrow into the thread.
        script = (meta.get("script") or {}).get("path")
        backend = (meta.get("backend") or {}).get("name")
        st.label = " / ".join(p for p in (Path(script).name if script else "", backend) if p) or st.kind
