"""The `cnnprof` command: parses, calls, prints. Each subcommand's work lives in its module."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import UserError
from .profiler import DEFAULT_PROFILER, PROFILER_MODES
from .terminal import console, error_line

if TYPE_CHECKING:
    from .traces.record import Backend

DATASET_CHOICES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "synthetic", "synthetic-cifar")
BACKEND_CHOICES = ("auto", "torch_cpu", "torch_mps", "torch_cuda", "mlx_gpu", "mlx_cpu")
LOOP_CHOICES = ("seed", "tuned", "fast")  # models.loops.common.LOOPS, kept here so startup imports no numpy


# The range of each numeric option, checked once parsed (one line, before anything starts).
# --profile-interval-ms: the signal handler costs 15-35 us a sample (docs/BENCHMARKS.md), a third
# of the run or more below 0.1 ms, where runs stopped making progress; past 1 s a run has few
# samples. --seed: numpy's generators take 32 bits. The others: a run that can finish.
# (--telemetry-interval-ms has its range in the telemetry registry, checked by _observers.)
OPTION_BOUNDS: dict[str, tuple[float, float]] = {
    "profile_interval_ms": (0.1, 1000.0),
    "epochs": (1, 100_000),
    "batch_size": (1, 65_536),
    "lr": (1e-12, 10.0),
    "seed": (0, 2**32 - 1),
    "single_inference": (0, 10_000_000),
    "train_images": (1, 100_000_000),
    "test_images": (1, 100_000_000),
}


def check_option_bounds(args: argparse.Namespace) -> None:
    """Raises `UserError` for the first numeric option out of its range (NaN and inf included)."""
    for name, (low, high) in OPTION_BOUNDS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if not (math.isfinite(value) and low <= value <= high):
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} {value} is out of range: pass a value from {low:g} to {high:g}")


def add_observation_options(p: argparse.ArgumentParser) -> None:
    """How a run is observed: shared by run, profile and bench."""
    g = p.add_argument_group("observation")
    g.add_argument(
        "--profiler",
        choices=PROFILER_MODES,
        default=DEFAULT_PROFILER,
        help="call-stack profiler. sampler: cnnprof's timer-signal sampler, costs per sample "
        "(Python frames only: a long C call shows on the line that made it); pyinstrument: also "
        "shows C functions, but costs on every Python call (+20%% on a launch-bound GPU loop); "
        "cprofile: the function table; both: sampler + cProfile; none. (default: sampler)",
    )
    g.add_argument(
        "--profile-interval-ms",
        type=float,
        default=1.0,
        metavar="MS",
        help="stack sampling interval of sampler / pyinstrument, 0.1..1000 (default: 1)",
    )
    g.add_argument(
        "--telemetry",
        default="auto",
        metavar="auto|none|LIST",
        help="hardware sources to sample in a separate process: auto (all that work here), none, "
        "or a comma list of macmon,powermetrics,nvml,procfs,rapl; auto takes macmon over powermetrics "
        "(no sudo) (default: auto)",
    )
    g.add_argument(
        "--telemetry-interval-ms",
        type=int,
        default=100,
        metavar="MS",
        help="sampling interval, 10..5000 (default: 100)",
    )
    g.add_argument(
        "--out",
        type=Path,
        default=Path("cnnprof-runs"),
        metavar="DIR",
        help="where run directories are created (default: ./cnnprof-runs)",
    )


def add_training_options(p: argparse.ArgumentParser, *, single_backend: bool = True) -> None:
    g = p.add_argument_group("training")
    if single_backend:
        g.add_argument(
            "--backend",
            default="auto",
            metavar="{" + ",".join(BACKEND_CHOICES) + "}",
            help="what trains: auto picks a GPU when there is one (default: auto)",
        )
    g.add_argument(
        "--dataset",
        default="synthetic",
        choices=DATASET_CHOICES,
        help="synthetic (MNIST-shaped, offline, learnable) is the default; real datasets are "
        "downloaded into --data-dir on first use",
    )
    g.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="dataset cache (default: $CNNPROF_DATA_DIR or ~/.cache/cnnprof)",
    )
    g.add_argument("--offline", action="store_true", help="never download; fail if the files are missing")
    g.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    g.add_argument("--batch-size", type=int, default=512, help="training and test batch size (default: 512)")
    g.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    g.add_argument("--seed", type=int, default=0, help="weights, split and batch order (default: 0)")
    if single_backend:
        g.add_argument(
            "--loop",
            choices=LOOP_CHOICES,
            default="seed",
            help="seed: the study's loop (per-batch .item(), DataLoader collate); "
            "tuned: each framework's best practice; fast: tuned with the whole step graphed / compiled "
            "(CUDA graphs on torch_cuda) (default: seed)",
        )
    g.add_argument(
        "--sync",
        choices=("batch", "epoch", "lazy"),
        default=None,
        help="override only the sync policy: read metrics every batch, once per epoch, or "
        "(MLX) evaluate nothing until the epoch ends",
    )
    g.add_argument(
        "--single-inference",
        type=int,
        default=10000,
        metavar="N",
        help="classify N test images one at a time (default: 10000)",
    )
    g.add_argument(
        "--train-images",
        type=int,
        default=None,
        metavar="N",
        help="train on the first N images of the training split, validate on N/9 (quick runs)",
    )
    g.add_argument(
        "--test-images",
        type=int,
        default=None,
        metavar="N",
        help="use only the first N images of the test set (quick runs)",
    )


def add_live_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--live",
        action="store_true",
        help="show a live panel while the run goes (GPU, CPU, power, memory, steps/s, syncs/s, the "
        "verdict so far); without a terminal, the usual line output",
    )


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
    console.print(
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
    console.print(summary_table(session.record))
    _explain(session.run_dir, write_report=not args.no_report, open_report=args.open)
    print(session.run_dir)
    return 0


def _wants_live(args: argparse.Namespace) -> bool:
    """--live draws a panel only on a terminal; elsewhere (a log, a pipe) the usual lines."""
    return bool(args.live) and console.is_terminal


def _live_view(args: argparse.Namespace, session: Any) -> contextlib.AbstractContextManager[Any]:
    if not _wants_live(args):
        return contextlib.nullcontext()
    from .live.view import LiveView

    return LiveView(session, console)


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

    with LiveView(session, console) as view:
        yield LiveEvents(args.epochs, view)


def _explain(run_dir: Path, *, write_report: bool, open_report: bool) -> None:
    from .reports.explain import explain

    explain(run_dir, show=True, write_report=write_report, open_report=open_report)


# -- report, diagnose, export -----------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    import webbrowser

    from .reports.html import report_command
    from .traces.job import is_job_dir

    if len(args.run_dirs) == 1 and is_job_dir(args.run_dirs[0]):
        from .reports.job_report import build_job_report
        from .traces.job import JobData

        job_dir = args.run_dirs[0]
        path = build_job_report(JobData(job_dir), args.output or job_dir / "report.html")
    else:
        path = report_command(args.run_dirs, args.output)
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .reports.diagnosis import diagnose, diagnosis_json, diagnosis_table
    from .traces.job import is_job_dir
    from .traces.reader import RunData

    if is_job_dir(args.run_dir):
        from .reports.diagnosis.job import diagnose_job, job_json
        from .reports.job_report import print_job_findings
        from .traces.job import JobData

        job = JobData(args.run_dir)
        if args.json:
            print(job_json(diagnose_job(job)))
        else:
            print_job_findings(job, console)
        return 0
    run = RunData(args.run_dir)
    diagnosis = diagnose(run)
    if args.json:
        print(diagnosis_json(diagnosis))
        return 0
    for note in run.notes:
        console.print(f"note: {note}", markup=False)
    console.print(diagnosis_table(diagnosis), soft_wrap=False)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .traces.export import export_command

    print(export_command(args.run_dir, args.format, args.output))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from .live.view import watch

    state = watch(args.run_dir, console)
    console.print(f"cnnprof watch: the run is {state.status}: {args.run_dir}", markup=False)
    return 0


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
    console.print(markdown.read_text(encoding="utf-8"), markup=False)
    if report:
        console.print(f"comparison report: {report}", markup=False)
    print(result.bench_dir)
    if result.interrupted:
        return 130
    return 0 if result.runs and not result.failed else 1


# -- profile and diagnose --------------------------------------------------------------------
def add_profile_and_diagnose_parsers(sub: Any) -> None:
    profile = sub.add_parser(
        "profile",
        help="your own script under the same observation: cnnprof profile [options] -- SCRIPT [ARGS]",
        description="Runs SCRIPT (or -m MODULE) in this process as `python SCRIPT ARGS` would, under "
        "the stack profiler, the sync hooks and telemetry; writes a run directory and names the "
        "bottlenecks. Put cnnprof's options before `--`.",
    )
    add_observation_options(profile)
    profile.add_argument("--open", action="store_true", help="open the report in a browser at the end")
    profile.add_argument("--no-report", action="store_true", help="skip report.html (diagnose still works)")
    add_live_option(profile)
    profile.add_argument(
        "-m",
        dest="module",
        nargs=argparse.REMAINDER,
        metavar="MODULE [ARGS]",
        help="run a module as `python -m MODULE ARGS` would (everything after it is the module's)",
    )
    profile.add_argument("script", nargs=argparse.REMAINDER, metavar="-- SCRIPT [ARGS]")
    add_distributed_options(profile)
    profile.set_defaults(handler=cmd_profile)

    diagnose = sub.add_parser("diagnose", help="the verdict and findings of a run directory, in the terminal")
    diagnose.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    diagnose.add_argument(
        "--json", action="store_true", help='print {"verdict": ..., "findings": [...]} as JSON instead of tables'
    )
    diagnose.set_defaults(handler=cmd_diagnose)

    watch = sub.add_parser(
        "watch",
        help="follow a run started elsewhere in the live panel, until it ends",
        description="Shows the live panel (telemetry, steps, syncs, the verdict so far) of a run that "
        "another process is recording, until its status leaves `running`; without a terminal, one "
        "line every few seconds.",
    )
    watch.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    watch.set_defaults(handler=cmd_watch)


def add_distributed_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed (torchrun / DDP)")
    g.add_argument(
        "--nproc-per-node",
        type=int,
        default=None,
        metavar="N",
        help="run SCRIPT as N ranks per node under PyTorch's launcher (torch.distributed.run): one job "
        "directory with a run directory per rank. Under torchrun (torchrun ... -m cnnprof profile) leave it out",
    )
    g.add_argument("--nnodes", type=int, default=1, metavar="N", help="nodes in the job (default: 1)")
    g.add_argument(
        "--rdzv-endpoint",
        default=None,
        metavar="HOST:PORT",
        help="rendezvous of a multi-node job (the same on every node); one node picks a free port itself",
    )
    g.add_argument(
        "--job-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the job directory (default: a new one under --out); with several nodes, the same shared path",
    )


def _profile_job(args: argparse.Namespace, target: str, user_args: list[str], module: bool) -> int:
    """`cnnprof profile --nproc-per-node N`: the ranks under torchrun, then the job's findings and report."""
    from .profiler.torchrun import launch_job

    _observers(args)  # a wrong option fails here, before anything starts
    rank_args = [
        "--profiler",
        args.profiler,
        "--profile-interval-ms",
        str(args.profile_interval_ms),
        "--telemetry",
        args.telemetry,
        "--telemetry-interval-ms",
        str(args.telemetry_interval_ms),
        "--out",
        str(args.out),
        "--no-report",
    ]
    what = ["-m", target, *user_args] if module else ["--", target, *user_args]
    label = target if module else Path(target).stem
    job_dir, code = launch_job(
        args.out, label, args.job_dir, args.nproc_per_node, args.nnodes, args.rdzv_endpoint, rank_args, what
    )
    _explain_job(job_dir, write_report=not args.no_report, open_report=args.open)
    print(job_dir)
    return code


def _explain_job(job_dir: Path, *, write_report: bool, open_report: bool) -> None:
    """The end of a job: its findings in the terminal, then report.html in the job directory."""
    from .reports.job_report import build_job_report, print_job_findings
    from .traces.job import JobData

    job = JobData(job_dir)
    print_job_findings(job, console)
    if write_report:
        import webbrowser

        report = build_job_report(job, job_dir / "report.html")
        console.print(f"report: {report}", markup=False)
        if open_report:
            webbrowser.open(report.resolve().as_uri())


def _end_rank(job_dir: Path, rank: Any, session: Any, write_report: bool) -> None:
    """A rank's outcome into job.json; the last rank of a job torchrun started writes its report."""
    from .traces.job import all_ranks_ended, finish_rank

    record = finish_rank(job_dir, rank.rank, session.record.status, session.record.error)
    if write_report and record.get("launcher") != "cnnprof" and all_ranks_ended(record):
        _explain_job(job_dir, write_report=True, open_report=False)


@_stopped_by_signals
def cmd_profile(args: argparse.Namespace) -> int:
    from .profiler.distributed import detect_rank
    from .profiler.script import check_user_code, run_user_code, user_traceback

    if args.module is not None:
        if not args.module:
            raise UserError("-m needs a module name: cnnprof profile -m MODULE [ARGS]")
        target, user_args, module = args.module[0], args.module[1:] + args.script, True
    else:
        script = args.script[1:] if args.script[:1] == ["--"] else args.script
        if not script:
            raise UserError("name what to profile: cnnprof profile [options] -- SCRIPT [ARGS], or -m MODULE [ARGS]")
        target, user_args, module = script[0], script[1:], False
    check_user_code(target, module=module)  # before the run directory exists
    rank = detect_rank()
    if args.nproc_per_node is not None:
        if rank is not None:
            raise UserError("--nproc-per-node launches the ranks; under torchrun leave it out")
        return _profile_job(args, target, user_args, module)
    label = target if module else Path(target).stem
    spawned = _spawn_telemetry(args, label) if rank is None else None
    from .api import observing
    from .profiler.distributed import rank_observers
    from .profiler.session import RunSession, SessionOptions
    from .traces.record import Script

    observers = _observers(args, spawned)
    job_dir = None
    run_dir = spawned.handle.run_dir if spawned else None
    if rank is not None:
        from .profiler.torchrun import default_job_dir, make_rank_dir

        job_dir = args.job_dir or default_job_dir(args.out, label, rank)
        run_dir = make_rank_dir(job_dir, rank)
        observers = rank_observers(observers, rank, job_dir)
    opts = SessionOptions(
        out_root=args.out,
        kind="script",
        label=label,
        argv=sys.argv,
        script=Script(path=target, module=module, argv=user_args),
        config={
            "profiler": args.profiler,
            "profile_interval_ms": args.profile_interval_ms,
            "telemetry": args.telemetry,
            "telemetry_interval_ms": args.telemetry_interval_ms,
        },
        run_dir=run_dir,
    )
    session = RunSession(opts, observers)
    console.print(f"cnnprof: profiling {target}, run directory {session.run_dir}", markup=False)
    try:
        with session, observing(session), _live_view(args, session):
            imported_before = frozenset(sys.modules)
            try:
                code = run_user_code(target, user_args, module=module)
                session.record.script.exit_code = code  # type: ignore[union-attr]
            finally:  # a script that fails still used a backend
                session.record.backend = _script_backend(session.recorder.rows, imported_before)
    except KeyboardInterrupt:
        error_line(f"interrupted; what was recorded is kept in {session.run_dir}")
        return 130
    except Exception as exc:
        if session.inherited:
            raise  # a forked child of the script: its own exception, nothing of cnnprof's
        sys.stderr.write(user_traceback(exc))  # the script's traceback, as python would print it
        error_line(f"{target} failed ({type(exc).__name__}); what was recorded is kept in {session.run_dir}")
        return 1
    finally:
        if rank is not None and job_dir is not None and not session.inherited:
            _end_rank(job_dir, rank, session, write_report=not args.no_report)
    if session.inherited:  # a forked child returned from the script: the run is the parent's
        return code
    if rank is not None:
        print(session.run_dir)
        return code
    _explain(session.run_dir, write_report=not args.no_report, open_report=args.open)
    print(session.run_dir)
    return code


def _script_backend(rows: list[tuple[Any, ...]], imported_before: frozenset[str]) -> Backend:
    """The backend a script used (profiler/backend_detect.py), named as `cnnprof run` names them."""
    from .models.backends import BACKENDS, probe_backend
    from .profiler.backend_detect import detect_backend
    from .traces.record import Backend

    found = detect_backend(rows, imported_before)
    if found is None:
        return Backend(detected=True)
    framework, device = found
    name = f"{framework}_{device}"
    status = probe_backend(name) if name in BACKENDS else None
    return Backend(
        name=name,
        framework=framework,
        framework_version=status.framework_version if status else "",
        device=device,
        device_name=status.device_name if status and status.available else "",
        detected=True,
    )


# -- doctor ------------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from .models.backends import BACKENDS, probe_backend

    table = Table(title="backends")
    for column in ("backend", "status", "device / reason", "fix"):
        table.add_column(column)
    for name in BACKENDS:
        s = probe_backend(name)
        if s.available:
            table.add_row(name, "[green]available[/]", f"{s.device_name} ({s.framework} {s.framework_version})", "")
        else:
            table.add_row(name, "[red]unavailable[/]", escape(s.reason), escape(s.fix))
    console.print(table)

    from .profiler.telemetry import available_sources

    sources = Table(title="telemetry sources")
    for column in ("source", "status", "reason", "fix"):
        sources.add_column(column)
    for name, status in available_sources().items():
        if status.ok:
            sources.add_row(name, "[green]available[/]", "", "")
        else:
            sources.add_row(name, "[red]unavailable[/]", escape(status.reason), escape(status.fix))
    console.print(sources)
    return 0


# -- telemetry -----------------------------------------------------------------------------------
def cmd_telemetry_parse_powermetrics(args: argparse.Namespace) -> int:
    from .profiler.telemetry import parse_powermetrics_command

    return parse_powermetrics_command(args.file, args.csv, sys.stdout)


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
