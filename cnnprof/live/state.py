"""What the live view knows about a run while it goes, read from the run's own records: the
telemetry stream file (tailed from where the last read stopped), run.json, and the spans recorded
so far (the in-process recorder's rows, or a span stream file). Nothing here samples anything.

A tick costs what arrived since the previous one: a few hundred telemetry lines and the new span
rows, parsed in plain Python (no pandas: the training process may not have it imported yet).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The stream files (traces/streams.py); named here so that this module imports nothing heavy.
STREAM_NAME = "telemetry.stream.csv"
SPANS_STREAM = "spans.stream.jsonl"
RUN_JSON = "run.json"

# Rates (steps/s, syncs/s) are over the last RATE_WINDOW_S of the run's clock: long enough to
# smooth a loop's jitter, short enough to follow a change of phase.
RATE_WINDOW_S = 5.0
HISTORY = 60  # telemetry values kept per metric, for the sparklines

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
    recent_steps: deque[Step] = field(default_factory=lambda: deque(maxlen=50))
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
        self._parts: deque[tuple[str, int, int]] = deque(maxlen=4096)  # (part, start, end)
        self._boundaries: deque[int] = deque(maxlen=4096)  # step end times, for the rate
        self._sync_ends: deque[int] = deque(maxlen=65536)
        self._boundary_kind: str | None = None
        self._last_boundary: int | None = None
        self.steps: list[Step] = []  # steps finished since the last take()
        self.count = 0
        self.sync_count = 0

    def feed(self, rows: Sequence[Row]) -> None:
        for row in rows:
            kind, name, start, end = row[0], row[1], row[2], row[3]
            if kind == "sync":
                if not _on_cpu(row):
                    self.sync_count += 1
                    self._sync_ends.append(end)
                    self._parts.append(("sync", start, end))
            elif kind in PARTS:
                self._parts.append((kind, start, end))
            elif kind == "hook" and name in PARTS:
                self._parts.append((name, start, end))
            boundary = _boundary_kind(kind, name)
            if boundary is None:
                continue
            if self._boundary_kind is None or _BOUNDARY_RANK[boundary] < _BOUNDARY_RANK[self._boundary_kind]:
                self._boundary_kind, self._last_boundary = boundary, None
            if boundary != self._boundary_kind:
                continue
            begin = start if boundary == "batch" else self._last_boundary
            self._last_boundary = end
            if begin is None:
                continue
            self.count += 1
            self._boundaries.append(end)
            self.steps.append(Step(end, (end - begin) / 1e9, self._split(begin, end)))

    def _split(self, begin: int, end: int) -> dict[str, float]:
        inside = [(p, max(s, begin), min(e, end)) for p, s, e in self._parts if e > begin and s < end]
        syncs = [(s, e) for p, s, e in inside if p == "sync"]
        split = dict.fromkeys(PARTS, 0.0)
        for part, s, e in inside:
            ns = e - s
            if part != "sync":
                ns -= sum(max(0, min(e, se) - max(s, ss)) for ss, se in syncs)
            split[part] += max(0, ns) / 1e9
        split["other"] = max(0.0, (end - begin) / 1e9 - sum(split.values()))
        return split

    def steps_per_s(self, now_ns: int) -> float | None:
        return _rate(self._boundaries, now_ns)

    def syncs_per_s(self, now_ns: int) -> float | None:
        return _rate(self._sync_ends, now_ns)

    def take(self) -> list[Step]:
        steps, self.steps = self.steps, []
        return steps


def _rate(ends: deque[int], now_ns: int) -> float | None:
    """Events per second over the last RATE_WINDOW_S: the intervals between the events in the
    window over the time from the first of them to now (so a stall makes the rate fall); None
    before the first event."""
    if not ends:
        return None
    since = now_ns - int(RATE_WINDOW_S * 1e9)
    recent = [t for t in ends if t > since]
    if len(recent) < 2 or now_ns <= recent[0]:
        return 0.0
    return (len(recent) - 1) / ((now_ns - recent[0]) / 1e9)


def _on_cpu(row: Row) -> bool:
    """A sync hook's read of a CPU tensor waits on nothing: it is not a sync (DESIGN.md)."""
    attrs = row[7] if len(row) > 7 else None
    return isinstance(attrs, dict) and attrs.get("device") == "cpu"


_BOUNDARY_RANK = {"batch": 0, "mark": 1, "optimizer": 2}


def _boundary_kind(kind: str, name: str) -> str | None:
    if kind == "batch" and name == "train":
        return "batch"
    if kind == "hook" and name in ("mark", "optimizer"):
        return name
    return None


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
        self._tail = TelemetryTail(run_dir / STREAM_NAME)
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
