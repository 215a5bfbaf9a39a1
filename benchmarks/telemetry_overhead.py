"""What the telemetry sampler costs a CPU-bound training run.

    python benchmarks/telemetry_overhead.py [--pairs 7] [--sources auto] [--interval-ms 100]
                                            [--steps 20] [--batch-size 128]
                                            [--workload MODULE:FUNCTION]

Times the workload alone and with the sampler running, in alternating pairs (the order flips
every pair, so drift in clock or temperature hits both sides alike), and prints each pair and
the median ratio with / without. The sampler is started before and stopped after the timed part:
only its presence during the work is measured.

The default workload is the study's CNN (cnnprof.models.cnn_torch.SeedCNN) training on random
MNIST-shaped batches with torch on the CPU. `--workload pkg.mod:fn` times `fn()` instead (any
zero-argument callable).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cnnprof.profiler.telemetry import start_sampler


def torch_training(steps: int, batch_size: int) -> Callable[[], None]:
    """`steps` Adam steps of the seed CNN on one random batch (setup and one warm-up step done here)."""
    import torch

    from cnnprof.models.cnn_torch import SeedCNN

    torch.manual_seed(0)
    model = SeedCNN(in_channels=1, num_classes=10, image_size=28)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (batch_size,))

    def step() -> None:
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()

    step()

    def run() -> None:
        for _ in range(steps):
            step()

    print(
        f"workload: seed CNN, {steps} steps x batch {batch_size}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    return run


def load_workload(spec: str) -> Callable[[], None]:
    module, _, name = spec.partition(":")
    if not name:
        raise SystemExit(f"--workload {spec!r}: expected MODULE:FUNCTION")
    return getattr(importlib.import_module(module), name)


def timed(work: Callable[[], None], sampler: tuple[str, int] | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        handle = start_sampler(Path(tmp), *sampler, time.perf_counter_ns()) if sampler else None
        start = time.perf_counter()
        work()
        seconds = time.perf_counter() - start
        if handle is not None:
            result = handle.stop()
            if result.error:
                print(f"  sampler error: {result.error}")
    return seconds


def measure(work: Callable[[], None], pairs: int, sources: str, interval_ms: int) -> list[tuple[float, float]]:
    """[(seconds without, seconds with)] per pair."""
    out = []
    for i in range(pairs):
        if i % 2 == 0:
            without = timed(work, None)
            with_ = timed(work, (sources, interval_ms))
        else:
            with_ = timed(work, (sources, interval_ms))
            without = timed(work, None)
        out.append((without, with_))
        print(f"pair {i + 1}: without {without:.3f} s, with {with_:.3f} s, ratio {with_ / without:.4f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=7, help="alternating pairs, at least 5 (default: 7)")
    parser.add_argument("--sources", default="auto", help="telemetry sources (default: auto)")
    parser.add_argument("--interval-ms", type=int, default=100, help="sampling interval (default: 100)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timing (default: 20)")
    parser.add_argument("--batch-size", type=int, default=128, help="seed CNN batch size (default: 128)")
    parser.add_argument(
        "--workload",
        default=None,
        metavar="MODULE:FUNCTION",
        help="time this zero-argument callable instead of the seed CNN",
    )
    args = parser.parse_args()
    if args.pairs < 5:
        parser.error("--pairs must be at least 5")

    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; sampler: {args.sources} every {args.interval_ms} ms"
    )
    work = load_workload(args.workload) if args.workload else torch_training(args.steps, args.batch_size)
    results = measure(work, args.pairs, args.sources, args.interval_ms)
    ratios = [with_ / without for without, with_ in results]
    median = statistics.median(ratios)
    print(
        f"median ratio with/without: {median:.4f} ({100 * (median - 1):+.2f} %), "
        f"min {min(ratios):.4f}, max {max(ratios):.4f} over {len(ratios)} pairs"
    )


if __name__ == "__main__":
    main()
