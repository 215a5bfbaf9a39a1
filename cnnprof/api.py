"""The Python API: observe a block of your own code as `cnnprof profile` observes a script.

    import cnnprof

    with cnnprof.profile(out="runs") as run:
        for batch in loader:
            train_step(batch)
            cnnprof.step()            # optional: a step boundary the hooks can't see
        with cnnprof.phase("eval"):
            evaluate()
    print(run.verdict, run.findings, run.run_dir)

One block at a time per process: the stack sampler (a timer signal) and the sync hooks are
process-wide, so a second `profile` while one is open, nested or from another thread, is an error
rather than two runs that see each other's work.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .errors import UserError

if TYPE_CHECKING:
    from .profiler.session import RunSession
    from .reports.findings import Diagnosis, Finding, Verdict

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
_active: RunSession | None = None  # the run observing this process, if any (what step() / phase() mark)


class ProfileError(UserError, RuntimeError):
    """A `cnnprof.profile` used out of turn: nested, concurrent, or read before it ran."""


class Profile:
    """Observe a block of code as `cnnprof profile` observes a script.

    `with cnnprof.profile() as run:` around the code, or `@cnnprof.profile()` on a function (each
    call is then its own run). The block gets the same observation as the command line: the stack
    sampler, the host-device sync hooks, the step hooks and the telemetry process. At its end the
    run directory (kind `block`) is written and diagnosed; the verdict and findings are printed and
    kept on the returned object: `run.verdict`, `run.findings`, `run.run_dir`, `run.status`,
    `run.report`.

    An exception inside the block still writes the run (status `failed`; Ctrl-C: `interrupted`)
    and propagates. One block at a time per process: opening a second one while one is open
    (nested, or from another thread) raises `ProfileError`.

    Options:
      out: the folder run directories are created in (default ./cnnprof-runs).
      label: the run directory's suffix (default "block").
      telemetry: hardware sources sampled in a separate process: "auto" (all that work here),
        "none", or a comma list of powermetrics, nvml, procfs, rapl.
      telemetry_interval_ms: the telemetry sampling interval, 10..5000 ms (default 100).
      profiler: the call-stack profiler: "sampler" (cnnprof's timer-signal sampler, Python frames
        only), "pyinstrument" (C functions too, costs on every Python call), "cprofile" (the
        function table), "both" (sampler + cProfile) or "none".
      profile_interval_ms: the stack sampling interval of sampler / pyinstrument (default 1 ms).
      report: write report.html into the run directory at the end (default True).
      show: print the verdict and findings (and where the report is) on stderr at the end (default True).
      open_report: open the report in a browser at the end (default False).

    Inside the block, `cnnprof.step()` (or `run.step()`) marks a step boundary where the hooks
    cannot see one, and `with cnnprof.phase("eval"):` (or `run.phase`) records a named phase.
    """

    def __init__(
        self,
        out: str | Path = "cnnprof-runs",
        *,
        label: str = "block",
        telemetry: str = "auto",
        telemetry_interval_ms: int = 100,
        profiler: str = "sampler",
        profile_interval_ms: float = 1.0,
        report: bool = True,
        show: bool = True,
        open_report: bool = False,
    ) -> None:
        from .profiler import PROFILER_MODES

        if profiler not in PROFILER_MODES:
            raise ProfileError(f"profiler={profiler!r} is not one of {', '.join(PROFILER_MODES)}")
        if profile_interval_ms <= 0:
            raise ProfileError(f"profile_interval_ms={profile_interval_ms} must be positive")
        self._options: dict[str, Any] = {
            "out": out,
            "label": label,
            "telemetry": telemetry,
            "telemetry_interval_ms": telemetry_interval_ms,
            "profiler": profiler,
            "profile_interval_ms": profile_interval_ms,
            "report": report,
            "show": show,
            "open_report": open_report,
        }
        self._session: RunSession | None = None
        self._diagnosis: Diagnosis | None = None
        self.report: Path | None = None

    # -- the block -----------------------------------------------------------------------------
    def __enter__(self) -> Profile:
        from .profiler.observers import standard_observers
        from .profiler.session import RunSession, SessionOptions

        o = self._options
        if self._session is not None:
            raise ProfileError("this cnnprof.profile() has already run; make a new one for another block")

        def make() -> RunSession:
            observers = standard_observers(
                profiler=o["profiler"],
                profile_interval_ms=o["profile_interval_ms"],
                telemetry=o["telemetry"],
                telemetry_interval_ms=o["telemetry_interval_ms"],
            )
            opts = SessionOptions(
                out_root=Path(o["out"]),
                kind="block",
                label=o["label"],
                argv=list(sys.argv),
                config={k: o[k] for k in ("profiler", "profile_interval_ms", "telemetry", "telemetry_interval_ms")},
            )
            return RunSession(opts, observers)

        self._session = session = _claim(make)
        try:
            session.__enter__()
        except BaseException:
            _release(session)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        session = self._require_session()
        try:
            session.__exit__(exc_type, exc, tb)
        finally:
            _release(session)
        if exc_type is not None:
            if self._options["show"]:
                from .terminal import error_line

                error_line(
                    f"the profiled block ended {self.status} ({exc_type.__name__}); what was recorded is "
                    f"kept in {self.run_dir}"
                )
            return  # the exception propagates
        from .reports.explain import explain

        o = self._options
        explanation = explain(session.run_dir, show=o["show"], write_report=o["report"], open_report=o["open_report"])
        self._diagnosis, self.report = explanation.diagnosis, explanation.report

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """As a decorator: each call of `func` is its own run, with these options."""

        @functools.wraps(func)
        def observed(*args: P.args, **kwargs: P.kwargs) -> R:
            with Profile(**self._options):
                return func(*args, **kwargs)

        return observed

    # -- marks ---------------------------------------------------------------------------------
    def step(self) -> None:
        """Marks a step boundary now (steps are the spans between marks)."""
        _mark(self._require_session())

    def phase(self, name: str) -> AbstractContextManager[Any]:
        """`with run.phase("eval"):` records the block as a phase named `name`."""
        return self._require_session().recorder.span("phase", name)

    # -- results -------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """The run directory (it exists from the block's start)."""
        return self._require_session().run_dir

    @property
    def status(self) -> str:
        """running, complete, failed or interrupted (as run.json says)."""
        return self._require_session().record.status

    @property
    def verdict(self) -> Verdict:
        """What bounds the run's steady-state step (`.id`: compute-bound, input-bound, sync-bound,
        launch-bound or setup-heavy), with the claim, the evidence, the fix and the step's time
        split (once the block ended normally)."""
        return self._require_diagnosis().verdict

    @property
    def findings(self) -> list[Finding]:
        """The findings that support or refine the verdict, most severe first."""
        return self._require_diagnosis().findings

    def _require_diagnosis(self) -> Diagnosis:
        if self._diagnosis is None:
            what = "is still open" if self.status == "running" else "did not end normally"
            raise ProfileError(f"no diagnosis: the block {what} (the run directory has what was recorded)")
        return self._diagnosis

    def _require_session(self) -> RunSession:
        if self._session is None:
            raise ProfileError("this cnnprof.profile() has not started: use it as `with cnnprof.profile() as run:`")
        return self._session


def _claim(make: Callable[[], RunSession]) -> RunSession:
    """Makes the session (and its run directory) only if no other run observes this process."""
    global _active
    with _lock:
        if _active is not None:
            raise ProfileError(
                f"cnnprof is already observing this process (run directory {_active.run_dir}); "
                "profiles neither nest nor run concurrently: end that block first"
            )
        _active = make()
        return _active


def _release(session: RunSession) -> None:
    global _active
    with _lock:
        if _active is session:
            _active = None


@contextmanager
def observing(session: RunSession) -> Iterator[None]:
    """Makes a session that the command line opened the one `cnnprof.step()` and
    `cnnprof.phase()` mark (`cnnprof profile` runs the user's script inside it)."""
    _claim(lambda: session)
    try:
        yield
    finally:
        _release(session)


profile = Profile


def step() -> None:
    """Marks a step boundary in the run observing this process (a `cnnprof.profile()` block or
    `cnnprof profile`); does nothing outside one, so the marks can stay in code that is not always
    profiled."""
    if (session := _active) is not None:
        _mark(session)


def _mark(session: RunSession) -> None:
    t = time.perf_counter_ns()
    session.recorder.record("hook", "mark", t, t)


def phase(name: str) -> AbstractContextManager[Any]:
    """`with cnnprof.phase("eval"):` records a named phase in the run observing this process;
    outside one it does nothing."""
    session = _active
    return session.recorder.span("phase", name) if session is not None else nullcontext()
