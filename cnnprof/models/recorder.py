"""What the training loops need of a phase recorder, as a protocol: models never import the
profiler (the one-way flow models -> profiler -> traces -> reports, docs/ARCHITECTURE.md).
profiler/spans.py's SpanRecorder is the implementation the session hands them."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol


class Recorder(Protocol):
    epoch: int | None  # the loop's current position, stamped on every span
    batch: int | None

    def span(self, kind: str, name: str = "", attrs: dict[str, Any] | None = None) -> AbstractContextManager[Any]:
        """`with rec.span("forward"):` records the block's start and end."""
        ...

    def sync(self, name: str) -> AbstractContextManager[Any]:
        """The loop's own sync phase (`.item()`, `mx.eval`)."""
        ...
