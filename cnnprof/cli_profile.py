"""`cnnprof profile` (a user's script or module, one process or a torchrun job) and `cnnprof
diagnose`'s parser: the subcommands that observe code cnnprof did not write. The shared option
groups live in cli_options.py; the run plumbing (observers, telemetry start, signal handling, the
closing lines) in cli.py, which imports this module when it builds its parser."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import terminal
from .cli import (
    _explain,
    _live_view,
    _observers,
    _spawn_telemetry,
    _stopped_by_signals,
)
from .cli_options import add_live_option, add_observation_options
from .cli_read import cmd_diagnose, cmd_watch
from .errors import UserError
from .terminal import error_line, plain_line

if TYPE_CHECKING:
    from .traces.record import Backend


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
    print_job_findings(job, terminal.console)
    if write_report:
        import webbrowser

        report = build_job_report(job, job_dir / "report.html")
        terminal.console.print(f"report: {report}", markup=False)
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
    plain_line(f"cnnprof: profiling {target}, run directory {session.run_dir}")  # rich not needed yet
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
    _explain(session, write_report=not args.no_report, open_report=args.open)
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
