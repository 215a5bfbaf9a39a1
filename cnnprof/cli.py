"""The `cnnprof` command: parses, calls, prints. Each subcommand's work lives in its module."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from . import __version__
from .errors import UserError
from .terminal import console, error_line

DATASET_CHOICES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "synthetic", "synthetic-cifar")
BACKEND_CHOICES = ("auto", "torch_cpu", "torch_mps", "torch_cuda", "mlx_gpu", "mlx_cpu")
PROFILERS = ("pyinstrument", "cprofile", "both", "none")


def _interval_ms(text: str) -> int:
    value = int(text)
    if not 10 <= value <= 5000:
        raise argparse.ArgumentTypeError(f"{value} is outside 10..5000 ms")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def add_observation_options(p: argparse.ArgumentParser) -> None:
    """How a run is observed: shared by run, profile and bench."""
    g = p.add_argument_group("observation")
    g.add_argument(
        "--profiler",
        choices=PROFILERS,
        default="pyinstrument",
        help="call-stack profiler: pyinstrument samples for the timeline, cProfile for the "
        "function table, both, or none (default: pyinstrument)",
    )
    g.add_argument(
        "--profile-interval-ms",
        type=_positive_float,
        default=1.0,
        metavar="MS",
        help="pyinstrument sampling interval (default: 1)",
    )
    g.add_argument(
        "--telemetry",
        default="auto",
        metavar="auto|none|LIST",
        help="hardware sources to sample in a separate process: auto (all that work here), none, "
        "or a comma list of powermetrics,nvml,procfs,rapl (default: auto)",
    )
    g.add_argument(
        "--telemetry-interval-ms",
        type=_interval_ms,
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
    g.add_argument("--epochs", type=int, default=10)
    g.add_argument("--batch-size", type=int, default=512)
    g.add_argument("--lr", type=float, default=1e-4)
    g.add_argument("--seed", type=int, default=0)
    if single_backend:
        g.add_argument(
            "--loop",
            choices=("seed", "tuned"),
            default="seed",
            help="seed: the study's loop (per-batch .item(), DataLoader collate); "
            "tuned: each framework's best practice (default: seed)",
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
        help="train on the first N images of the training split only (quick runs)",
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
    run.set_defaults(handler=cmd_run)

    doctor = sub.add_parser(
        "doctor", help="what this machine can run and sample, and how to fix what it can't"
    )
    doctor.set_defaults(handler=cmd_doctor)
    return parser


# -- run ---------------------------------------------------------------------------------------
def _observers(args: argparse.Namespace) -> list[Any]:
    """The observers a run gets from its options (telemetry, stacks, sync hooks)."""
    return []


def _install_sigterm() -> None:
    """SIGTERM ends a run like Ctrl-C does: the run directory is written with status interrupted."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def cmd_run(args: argparse.Namespace) -> int:
    from .models.loops.common import LoopConfig
    from .profiler.session import RunSession
    from .terminal import ProgressEvents, summary_table
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
    prepared = prepare_run(request)
    _install_sigterm()
    session = RunSession(prepared.session_options, _observers(args))
    console.print(
        f"cnnprof: {prepared.backend.name} on {prepared.backend.device_name}, "
        f"{prepared.data.name}, loop {args.loop}, run directory {session.run_dir}"
    )
    try:
        with ProgressEvents(args.epochs) as events, session:
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
    console.print(summary_table(session.meta))
    print(session.run_dir)
    return 0


# -- doctor ------------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .models.backends import BACKENDS, probe_backend

    table = Table(title="backends")
    for column in ("backend", "status", "device / reason", "fix"):
        table.add_column(column)
    for name in BACKENDS:
        s = probe_backend(name)
        if s.available:
            table.add_row(
                name, "[green]available[/]", f"{s.device_name} ({s.framework} {s.framework_version})", ""
            )
        else:
            table.add_row(name, "[red]unavailable[/]", s.reason, s.fix)
    console.print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        error_line(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
