"""The session's stream flusher: a daemon thread that, every `period_s`, appends what the run
recorded since the last time to its stream files (traces/streams.py), off the training thread.

Each flush is a slice of lists the training thread appends to, and one write: a few hundred
microseconds a second at the default 1 ms sampling interval. A flush that fails (disk full) is
recorded once and retried at the next period; the run goes on."""

from __future__ import annotations

import threading
from collections.abc import Callable

FLUSH_PERIOD_S = 0.5


class StreamFlusher:
    def __init__(self, period_s: float = FLUSH_PERIOD_S) -> None:
        self.period_s = period_s
        self.errors: list[str] = []
        self._flushes: list[Callable[[], None]] = []
        self._lock = threading.Lock()  # one flush at a time: the thread's, or stop()'s last one
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, flush: Callable[[], None]) -> None:
        with self._lock:
            self._flushes.append(flush)

    def remove(self, flush: Callable[[], None]) -> None:
        with self._lock:
            if flush in self._flushes:
                self._flushes.remove(flush)

    def forget(self) -> None:
        """In a forked child: the thread is not there, and the streams are the parent's."""
        self._flushes = []
        self._thread = None
        self._lock = threading.Lock()  # the parent's may have been held at the fork

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cnnprof-stream-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            for flush in self._flushes:
                try:
                    flush()
                except Exception as exc:  # a full disk must not end the run
                    message = f"stream flush failed: {type(exc).__name__}: {exc}"
                    if message not in self.errors:
                        self.errors.append(message)

    def stop(self) -> None:
        """Ends the thread after a last flush."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        self.flush()
