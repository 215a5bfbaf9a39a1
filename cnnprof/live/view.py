"""Drives the live panel: in the training process (`--live`), a thread that reads the run's
records and redraws at ~2 Hz; from another process (`cnnprof watch`), the same loop in the
foreground until the run's status leaves `running`.

The thread only reads files and the recorder's list and draws: no sampling, and the GIL it takes
is a few milliseconds a second (benchmarks/live_cost.py measures what that costs an epoch).
rich's Live hides the cursor and restores the terminal when it stops, which `__exit__` does on
any ending, Ctrl-C included.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..errors import UserError
from .output import HeldStreams
from .panel import render
from .state import RUN_JSON, LiveReader, LiveState
from .verdict import gpu_busy_pct, live_verdict

if TYPE_CHECKING:
    from ..profiler.session import RunSession

PERIOD_S = 0.5
# Without a terminal, `cnnprof watch` prints one line this often instead of a panel.
LINE_PERIOD_S = 5.0


class LiveView:
    """`with LiveView(session, console):` inside the session's block shows the panel for it.
    What the observed code prints to the terminal meanwhile is held and shown above the panel at
    each redraw (live/output.py says why)."""

    def __init__(self, session: RunSession, console: Console, period_s: float = PERIOD_S) -> None:
        self.reader = LiveReader(session.run_dir, span_rows=lambda: session.recorder.rows)
        self.console = console
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cnnprof-live", daemon=True)
        self._live = Live(console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
        self._held = HeldStreams()
        self._lock = threading.Lock()  # one redraw at a time: the thread's, or __exit__'s last one

    @property
    def state(self) -> LiveState:
        return self.reader.state

    def __enter__(self) -> LiveView:
        self._live.start()
        self._held.__enter__()
        self._draw(self.reader.tick())
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            # The session writes its status after the view has gone: say how the block ended.
            state = self.reader.tick()
            state.status = "ended" if exc_type is None else "interrupted" if exc_type is KeyboardInterrupt else "failed"
            self._draw(state, everything=True)
        finally:
            self._held.__exit__()
            self._live.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self._draw(self.reader.tick())
            except Exception as exc:  # the view must never take the run down with it
                self._live.console.print(f"cnnprof: live view stopped ({type(exc).__name__}: {exc})", markup=False)
                return

    def _draw(self, state: LiveState, everything: bool = False) -> None:
        with self._lock:
            for text, _ in self._held.take(everything):
                self._live.console.print(Text.from_ansi(text.removesuffix("\n")), soft_wrap=True)
            self._live.update(render(state), refresh=True)


class LiveEvents:
    """The loops' LoopEvents for a live run: the position goes into the panel's title and each
    finished epoch prints its line above the panel (rich's Live keeps the panel below)."""

    def __init__(self, epochs: int, view: LiveView) -> None:
        self.epochs = epochs
        self.view = view
        self._where = ""
        self._done = 0
        self._total = 0

    def phase_started(self, phase: str, total: int, epoch: int | None) -> None:
        self._where = (f"epoch {epoch}/{self.epochs} " if epoch else "") + phase
        self._done, self._total = 0, total
        self._show()

    def advanced(self) -> None:
        self._done += 1
        self._show()

    def _show(self) -> None:
        self.view.state.progress = f"{self._where} {self._done}/{self._total}"

    def epoch_finished(self, row: dict[str, Any]) -> None:
        from ..terminal import epoch_line

        self.view.console.print(epoch_line(row, self.epochs), markup=False)


def status_line(st: LiveState) -> str:
    """The one-line form of the panel, for a log file."""
    busy = gpu_busy_pct(st)
    verdict = live_verdict(st)
    parts = [f"{int(st.elapsed_s) // 60:02d}:{int(st.elapsed_s) % 60:02d}", st.status]
    if st.steps:
        parts.append(f"steps {st.steps} ({st.steps_per_s or 0:.1f}/s)")
    if busy is not None:
        parts.append(f"GPU busy {busy:.0f} %")
    if (cpu := st.telemetry.get("procfs.cpu_busy_pct")) is not None:
        parts.append(f"CPU {cpu:.0f} %")
    if verdict.label:
        parts.append(f"so far {verdict.label}")
    return "cnnprof watch: " + ", ".join(parts)


def watch(run_dir: Path, console: Console, period_s: float = PERIOD_S) -> LiveState:
    """Follows a run started elsewhere until its status leaves `running` (or its process is
    gone); returns the last state."""
    if not (run_dir / RUN_JSON).is_file():
        raise UserError(f"{run_dir}: no {RUN_JSON}, so this is not a run directory (pass one that cnnprof made)")
    reader = LiveReader(run_dir)
    state = reader.tick()
    if console.is_terminal:
        with Live(render(state), console=console, auto_refresh=False, transient=False) as live:
            while _going(state):
                time.sleep(period_s)
                state = reader.tick()
                live.update(render(state), refresh=True)
    else:
        last = 0.0
        while True:
            if time.monotonic() - last >= LINE_PERIOD_S or not _going(state):
                console.print(status_line(state), markup=False)
                last = time.monotonic()
            if not _going(state):
                break
            time.sleep(period_s)
            state = reader.tick()
    return state


def _going(state: LiveState) -> bool:
    return state.status == "running" and (state.pid is None or _alive(state.pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True
