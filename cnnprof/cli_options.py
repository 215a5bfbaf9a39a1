"""The option groups the `cnnprof` subcommands share (how a run is observed, what it trains, the
live panel) and the numeric options' ranges. Importing it costs argparse alone: the choices are
spelled out here so that `cnnprof --help` imports no framework and no numpy."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .errors import UserError
from .profiler import DEFAULT_PROFILER, PROFILER_MODES

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
        "--no-gpu-trace",
        action="store_true",
        help="on CUDA, skip the GPU-side trace (CUPTI, via torch.profiler) of 20 steps after the 30th, "
        "which times the GPU's idle gaps for the sync cost (its start costs ~1 s once)",
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
            "tuned: each framework's best practice; fast: tuned plus what its launch-bound verdict advises "
            "(torch_cuda: the step as CUDA graphs with an Inductor-compiled model; MLX: the whole step "
            "compiled, an elementwise max pooling, on CUDA MLX's CUDA graphs off) (default: seed)",
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
