"""The phase recorder: every epoch, batch, forward, backward, optimizer step and sync is a span.

Spans are kept in plain lists of tuples while the run trains (an append is the cheapest thing
Python can do; benchmarks/span_cost.py measures it) and turned into a table once, at the end;
meanwhile the session's flusher thread appends the new ones to spans.stream.jsonl (`flush_to`).
All times are `time.perf_counter_ns()`, the run's one clock.
"""

from __future__ import annotations

import time
from typing import Any

from ..traces.streams import LineStream, SpanRow, span_line, spans_to_columns

_now = time.perf_counter_ns




class _OpenSpan:
    """Context manager for one span; `__slots__` keeps creation and exit under a microsecond."""

    __slots__ = ("_rec", "_kind", "_name", "_attrs", "_start", "_end")

    def __init__(self, rec: SpanRecorder, kind: str, name: str, attrs: dict[str, Any] | None) -> None:
        self._rec = rec
        self._kind = kind
        self._name = name
        self._attrs = attrs

    def __enter__(self) -> _OpenSpan:
        self._start = _now()
        return self

    def __exit__(self, *exc: object) -> None:
        rec = self._rec
        self._end = end = _now()
        rec.rows.append((self._kind, self._name, self._start, end, rec.epoch, rec.batch, None, self._attrs))

    @property
    def seconds(self) -> float:
        """The span's duration, once it has ended (the loops' only source of timings)."""
        return (self._end - self._start) / 1e9


class _NoSpan:
    """Stands in for a span that another recorder (the sync hooks) already records."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()


class SpanRecorder:
    """Collects spans for one run. `epoch` and `batch` are the loop's current position.

    `sync_hooked` is set while the sync hooks (profiler/sync.py) are installed: they record every
    blocking sync with its caller, so the loops' own coarse "sync" phase would only duplicate them.
    """

    def __init__(self) -> None:
        self.rows: list[SpanRow] = []
        self.epoch: int | None = None
        self.batch: int | None = None
        self.sync_hooked = False
        self._flushed = 0

    def span(self, kind: str, name: str = "", attrs: dict[str, Any] | None = None) -> _OpenSpan:
        """`with rec.span("forward"):` records the block's start and end."""
        return _OpenSpan(self, kind, name or kind, attrs)

    def sync(self, name: str) -> _OpenSpan | _NoSpan:
        """The loop's own sync phase (`.item()`, `mx.eval`), unless the sync hooks record it."""
        return _NO_SPAN if self.sync_hooked else _OpenSpan(self, "sync", name, None)

    def record(
        self,
        kind: str,
        name: str,
        start_ns: int,
        end_ns: int,
        caller: str | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        """Adds a span measured elsewhere (sync hooks, a sub-process)."""
        self.rows.append((kind, name, start_ns, end_ns, self.epoch, self.batch, caller, attrs))

    def flush_to(self, stream: LineStream) -> None:
        """Appends the spans recorded since the last call (rows are only ever appended)."""
        n = len(self.rows)
        if n > self._flushed:
            stream.append([span_line(self.rows[self._flushed : n])])
            self._flushed = n

    def columns(self, t0_ns: int) -> dict[str, list[Any]]:
        """The spans as columns, times relative to `t0_ns`, sorted by start."""
        return spans_to_columns(self.rows, t0_ns)
