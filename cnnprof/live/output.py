"""What the observed code prints while the panel is up: collected, and shown above the panel at
the panel's own pace.

rich's Live redirects stdout / stderr itself, but it redraws the panel on every printed line: a
script that prints each step would pay a render (milliseconds) per line. Here a write only
appends to a list; the view's thread prints what arrived, all at once, before each redraw.
"""

from __future__ import annotations

import io
import sys
import threading
from typing import IO, Any


class HeldOutput(io.TextIOBase):
    """Stands in for `sys.stdout` or `sys.stderr`; `take()` returns the complete lines so far."""

    def __init__(self, original: IO[str]) -> None:
        self.original = original
        self._parts: list[str] = []
        self._lock = threading.Lock()

    @property
    def rich_proxied_file(self) -> IO[str]:
        """rich's consoles write to the file behind this one (else the panel would hold itself)."""
        return self.original

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        """Shown at the next redraw."""

    def fileno(self) -> int:
        return self.original.fileno()

    def isatty(self) -> bool:
        return self.original.isatty()

    def take(self, everything: bool = False) -> str:
        """The complete lines written so far (with `everything`, a last unfinished one too). A
        line rewritten with carriage returns (a progress bar) keeps what a terminal would show:
        its last version."""
        with self._lock:
            text = "".join(self._parts)
            cut = len(text) if everything else text.rfind("\n") + 1
            rest = text[cut:]
            self._parts = [rest[rest.rfind("\r") + 1 :]] if rest else []
        return "\n".join(line[line.rfind("\r") + 1 :] for line in text[:cut].split("\n"))


class HeldStreams:
    """`with HeldStreams() as held:` swaps stdout and stderr, where they are a terminal, for
    `HeldOutput`s (a stream sent to a file or a pipe goes on as it was), and puts the originals
    back on the way out."""

    def __init__(self) -> None:
        self.held: list[HeldOutput] = []

    def __enter__(self) -> HeldStreams:
        if _is_terminal(sys.stdout):
            sys.stdout = HeldOutput(sys.stdout)
            self.held.append(sys.stdout)
        if _is_terminal(sys.stderr):
            sys.stderr = HeldOutput(sys.stderr)
            self.held.append(sys.stderr)
        return self

    def __exit__(self, *exc: object) -> None:
        for held in self.held:
            if sys.stdout is held:
                sys.stdout = held.original
            if sys.stderr is held:
                sys.stderr = held.original
        self.held = []

    def take(self, everything: bool = False) -> list[tuple[str, IO[str]]]:
        """(text, the stream it was meant for) for each stream that has some."""
        return [(text, h.original) for h in self.held if (text := h.take(everything))]


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
