"""A telemetry source that is a child process printing samples to its stdout (powermetrics,
macmon): start it, read its stdout in a thread as samples arrive, stamp each sample with
perf_counter_ns at receipt (the run's clock), keep its last stderr lines for the reason it
failed, and end it at close.

A subclass says how to turn bytes into samples (`feed`, `end_of_stream`); the rows and the
child's lifecycle are handled here.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from abc import abstractmethod
from typing import Any

from .base import Reading, Source, SourceConfig

# How long probe waits for the first sample (or the child's exit) before calling it running.
FIRST_SAMPLE_WAIT_S = 1.0


class PipedSource(Source):
    """Lifecycle: `start(cmd)` from the subclass's `probe`, then `read` / `close` as any source."""

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self._proc: subprocess.Popen[bytes] | None = None
        self._samples: collections.deque[tuple[int, dict[str, float]]] = collections.deque()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._first = threading.Event()
        self._closing = False
        self._threads: list[threading.Thread] = []

    @abstractmethod
    def feed(self, chunk: bytes) -> list[dict[str, float]]:
        """The samples completed by this chunk of stdout (cut anywhere)."""

    def end_of_stream(self) -> None:
        """The child closed stdout while the run still wanted samples (a torn last one)."""

    def start(self, cmd: list[str]) -> str | None:
        """Starts the child and waits (at most FIRST_SAMPLE_WAIT_S) for its first sample or its
        exit. None when it runs (or has sampled); else why not (its stderr, or its exit code).
        After a failed start and `close()`, it may be called again (another command line)."""
        self._samples.clear()
        self._stderr.clear()
        self._first.clear()
        self._closing = False
        self._threads = []
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
            )
        except OSError as exc:
            return f"cannot start {cmd[0]}: {exc}"
        readers = ((self._read_stdout, self._proc.stdout), (self._read_stderr, self._proc.stderr))
        for target, stream in readers:
            thread = threading.Thread(target=target, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)
        # A child that cannot run (no permission, a wrong flag) fails at once; a working one runs
        # until its first window ends. Waiting for either tells them apart without a second child.
        deadline = time.monotonic() + FIRST_SAMPLE_WAIT_S
        while self._proc.poll() is None and not self._first.wait(0.02):
            if time.monotonic() > deadline:
                break
        if self._proc.poll() is None or self._samples:
            return None
        for thread in self._threads:
            thread.join(1.0)
        return self.stderr_tail() or f"exit code {self._proc.returncode}"

    def _read_stdout(self, stream: Any) -> None:
        while chunk := stream.read(65536):
            now = time.perf_counter_ns()
            for sample in self.feed(chunk):
                self._samples.append((now, sample))
                self._first.set()
        if not self._closing:  # stopped by us, a cut last sample is expected, not worth a warning
            self.end_of_stream()

    def _read_stderr(self, stream: Any) -> None:
        for line in stream:
            if text := line.decode("utf-8", "replace").strip():
                self._stderr.append(text)

    def stderr_tail(self) -> str:
        return " | ".join(list(self._stderr)[-3:])

    def read(self, now_ns: int, final: bool = False) -> list[Reading]:
        rows: list[Reading] = []
        while self._samples:
            t_ns, values = self._samples.popleft()
            rows += [(t_ns, metric, value) for metric, value in values.items()]
        if not rows and not final and self._proc is not None and not self._threads[0].is_alive():
            # stdout is closed and drained: the child is gone. Its last words, then its code.
            self._threads[1].join(1.0)
            try:
                code: int | None = self._proc.wait(1.0)
            except subprocess.TimeoutExpired:
                code = None
            raise RuntimeError(f"{self.name} exited (code {code}): {self.stderr_tail() or 'no message'}")
        return rows

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._closing = True
        if proc.poll() is None:
            proc.terminate()  # sudo passes SIGTERM on to its command
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self._threads:
            thread.join(1.0)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        self._proc = None
