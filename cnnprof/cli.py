"""The `cnnprof` command: parses, calls, prints. Each subcommand's work lives in its module."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import __version__, terminal
from .cli_options import (
    BACKEND_CHOICES,
    LOOP_CHOICES,
    add_live_option,
    add_observation_options,
    add_training_options,
    check_option_bounds,
)
from .cli_read import cmd_doctor, cmd_export, cmd_report, cmd_telemetry_parse_powermetrics
from .errors import UserError
from .terminal import error_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnprof",
        description="Where does my training time (and energy) go, and why? Trains a reference CNN (or runs "
        "your script) under a profiler while a separate process samples the hardware, then "
        "writes one HTML report and names the bottlenecks.",
    )
    parser.add_argument("--version", action="version", version=f"cnnprof {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="train the reference CNN on one backend, observed",
        description="Train the study's CNN on one backend under the profiler and telemetry; "
        "writes a run directory with report.html.",
    )
    add_training_options(run)
    add_observation_options(run)
    run.add_argument("--open", action="store_true", help="open the report in a browser at the end")
    run.add_argument("--no-report", action="store_true", help="skip report.html (diagnose still works)")
    add_live_option(run)
    run.set_defaults(handler=cmd_run)

    report = sub.add_parser(
        "report",
        help="write the HTML report of a run, or the comparison of several",
        description="One run: its full report (default RUN_DIR/report.html). Several: the study's comparison "
        "(default ./comparison.html). Works offline, on any machine, without torch or mlx.",
    )
    report.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    report.add_argument("-o", "--output", type=Path, default=None, metavar="FILE")
    report.add_argument("--open", action="store_true", help="open it in a browser")
    report.set_defaults(handler=cmd_report)

    export = sub.add_parser(
        "export",
        help="a run as a Chrome/Perfetto trace or a speedscope profile",
        description="chrome: phases, sync calls, stack samples and telemetry counters for ui.perfetto.dev or "
        "chrome://tracing; speedscope: the stack samples, weighted, for speedscope.app.",
    )
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export.add_argument("--format", required=True, choices=("chrome", "speedscope"))
    export.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    export.set_defaults(handler=cmd_export)

    bench = sub.add_parser(
        "bench",
        help="the study's comparison: every backend x loop here, one process each, one report",
        description="Runs each backend x loop as its own `cnnprof run` process (unavailable backends are "
        "skipped with their reason), then writes compare.html and bench.md in one bench folder. "
        "Ctrl-C keeps the finished runs and still writes the comparison of those.",
    )
    bench.add_argument(
        "--backends", required=True, metavar="A,B,...", help="comma list of " + ", ".join(BACKEND_CHOICES[1:])
    )
    bench.add_argument(
        "--loops", default="seed,tuned", metavar="seed,tuned,fast", help="comma list (default: seed,tuned)"
    )
    add_training_options(bench, single_backend=False)
    add_observation_options(bench)
    bench.set_defaults(handler=cmd_bench)

    from .cli_profile import add_profile_and_diagnose_parsers  # its own module: the profile command

    add_profile_and_diagnose_parsers(sub)

    doctor = sub.add_parser("doctor", help="what this machine can run and sample, and how to fix what it can't")
    doctor.set_defaults(handler=cmd_doctor)

    telemetry = sub.add_parser("telemetry", help="telemetry tools: read a saved powermetrics capture")
    telemetry_sub = telemetry.add_subparsers(dest="telemetry_command", required=True, metavar="TOOL")
    parse_pm = telemetry_sub.add_parser(
        "parse-powermetrics",
        help="summarise a `powermetrics -f plist` capture (or print its rows with --csv)",
    )
    parse_pm.add_argument("file", type=Path, metavar="FILE")
    parse_pm.add_argument("--csv", action="store_true", help="print rows t_s,metric,value instead of a summary")
    parse_pm.set_defaults(handler=cmd_telemetry_parse_powermetrics)
    return parser


# -- run ---------------------------------------------------------------------------------------
def _observers(args: argparse.Namespace, spawned: Any = None) -> list[Any]:
    from .profiler.observers import standard_observers

    return standard_observers(
        profiler=args.profiler,
        profile_interval_ms=args.profile_interval_ms,
        telemetry=args.telemetry,
        telemetry_interval_ms=args.telemetry_interval_ms,
        spawned=spawned,
        gpu_trace=not args.no_gpu_trace,
    )


def _spawn_telemetry(args: argparse.Namespace, label: str) -> Any:
    """The run directory and its telemetry sampler, first thing: the sampler's start-up (a Python
    process that probes its sources, ~0.3 s) then runs while cnnprof imports the rest (pyarrow,
    the hooks). Returns the TelemetryObserver; its `handle.run_dir` is the run directory."""
    from .profiler.observers import TelemetryObserver
    from .profiler.rundir import make_run_dir
    from .profiler.telemetry.registry import check_interval, parse_sources

    parse_sources(args.telemetry)  # a wrong option fails before the run directory exists
    check_interval(args.telemetry_interval_ms)
    observer = TelemetryObserver(args.telemetry, args.telemetry_interval_ms)
    observer.spawn(make_run_dir(args.out, label))
    return observer


_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _stopped_by_signals(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """While `command` runs, SIGTERM and SIGHUP (the terminal closed) end a run like Ctrl-C does:
    the run directory is written with status interrupted. The previous handlers come back after,
    so a caller in the same process (the API, a test) keeps its own."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    @functools.wraps(command)
    def wrapped(args: argparse.Namespace) -> int:
        previous = {signum: signal.signal(signum, handler) for signum in _STOP_SIGNALS}
        try:
            return command(args)
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    return wrapped


@_stopped_by_signals
def cmd_run(args: argparse.Namespace) -> int:
    from .models.loops.common import LoopConfig
    from .profiler.session import RunSession
    from .terminal import summary_table
    from .train import RunRequest, execute_run, prepare_run

    request = RunRequest(
        backend=args.backend,
        dataset=args.dataset,
        loop_config=LoopConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            loop=args.loop,
            sync=args.sync,
            single_inference=args.single_inference,
        ),
        out_root=args.out,
        argv=sys.argv,
        data_dir=args.data_dir,
        download=not args.offline,
        train_images=args.train_images,
        test_images=args.test_images,
    )
    observers = _observers(args)
    prepared = prepare_run(request)
    session = RunSession(prepared.session_options, observers)
    terminal.console.print(
        f"cnnprof: {prepared.backend.name} on {prepared.backend.device_name}, "
        f"{prepared.data.name}, loop {args.loop}, run directory {session.run_dir}",
        markup=False,
    )
    try:
        with session, _run_events(args, session) as events:
            execute_run(prepared, session, events)
    except KeyboardInterrupt:
        error_line(f"interrupted; what was recorded is kept in {session.run_dir}")
        return 130
    except Exception as exc:
        if os.environ.get("CNNPROF_DEBUG"):
            traceback.print_exc()
        error_line(
            f"the run failed ({type(exc).__name__}: {exc}); what was recorded is kept in "
            f"{session.run_dir} (set CNNPROF_DEBUG=1 for the traceback)"
        )
        return 1
    _explain(session, write_report=not args.no_report, open_report=args.open, summary=summary_table)
    print(session.run_dir)
    return 0


def _wants_live(args: argparse.Namespace) -> bool:
    """--live draws a panel only on a terminal; elsewhere (a log, a pipe) the usual lines."""
    return bool(args.live) and terminal.console.is_terminal


def _live_view(args: argparse.Namespace, session: Any) -> contextlib.AbstractContextManager[Any]:
    if not _wants_live(args):
        return contextlib.nullcontext()
    from .live.view import LiveView

    return LiveView(session, terminal.console)


@contextlib.contextmanager
def _run_events(args: argparse.Namespace, session: Any) -> Iterator[Any]:
    """`cnnprof run`'s loop events: the progress bars, or with --live the panel (rich shows one
    live display at a time, so the panel carries the position instead)."""
    if not _wants_live(args):
        from .terminal import ProgressEvents

        with ProgressEvents(args.epochs) as events:
            yield events
        return
    from .live.view import LiveEvents, LiveView

    with LiveView(session, terminal.console) as view:
        yield LiveEvents(args.epochs, view)


def _explain(
    session: Any, *, write_report: bool, open_report: bool, summary: Callable[[Any], Any] | None = None
) -> None:
    """The closing lines of a run: `summary` of its record (`cnnprof run`'s table), the verdict and
    findings, report.html; then how long the run's own end took and, apart, this explaining (its
    first read builds the tables from the streams: traces/tables.py)."""
    import time

    from .reports.explain import explain
    from .traces.reader import RunData

    start = time.perf_counter()
    if summary is not None:
        terminal.console.print(summary(RunData(session.run_dir).record))
    explain(session.run_dir, show=True, write_report=write_report, open_report=open_report)
    what = "tables, diagnosis and report" if write_report else "tables and diagnosis"
    stop = f"the run's end took {session.stop_s:.2f} s; " if session.stop_s is not None else ""
    terminal.console.print(f"cnnprof: {stop}{what} {time.perf_counter() - start:.2f} s", markup=False, style="dim")


# -- bench ------------------------------------------------------------------------------------
_PASSED_ON = (
    "dataset",
    "data_dir",
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "sync",
    "single_inference",
    "train_images",
    "test_images",
    "profiler",
    "profile_interval_ms",
    "telemetry",
    "telemetry_interval_ms",
)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import parse_list, run_bench, write_bench_outputs

    backends = parse_list(args.backends, BACKEND_CHOICES[1:], "backend")
    loops = parse_list(args.loops, LOOP_CHOICES, "loop")
    run_args: list[str] = ["--offline"] if args.offline else []
    for name in _PASSED_ON:
        value = getattr(args, name)
        if value is not None:
            run_args += [f"--{name.replace('_', '-')}", str(value)]
    result = run_bench(backends, loops, run_args, args.out)
    report, markdown = write_bench_outputs(result)
    terminal.console.print(markdown.read_text(encoding="utf-8"), markup=False)
    if report:
        terminal.console.print(f"comparison report: {report}", markup=False)
    print(result.bench_dir)
    if result.interrupted:
        return 130
    return 0 if result.runs and not result.failed else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_option_bounds(args)
        return int(args.handler(args) or 0)
    except UserError as exc:
        error_line(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except BrokenPipeError:
        # `cnnprof ... | head`: the reader left; say nothing more (python's own convention).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
