"""What the signal sampler costs per sample, in one process, on cnnprof's own training loop.

    python benchmarks/sampler_cost.py                       # torch_cuda if there is a GPU, else torch_cpu
    python benchmarks/sampler_cost.py --loop seed --intervals 1,2,5 --rounds 6

`benchmarks/overhead.py` compares whole `cnnprof run` processes, whose epoch times vary by 10-20 %
between processes on a shared machine. This runs one trainer and alternates epochs with and
without the sampler (and, with --pyinstrument, under pyinstrument), so the comparison is free of
process-to-process noise. Per side it prints the median epoch time, the ratio to no profiler, the
samples taken, the time measured inside the sampler's handler per sample, and the rest of the
added time per sample (signal delivery, the interrupted code's lost caches: what the handler's own
clock cannot see). The stack depth is that of `cnnprof run` give or take a few frames.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnprof.models.data import load_dataset  # noqa: E402
from cnnprof.models.loops import make_trainer  # noqa: E402
from cnnprof.models.loops.common import LoopConfig, epoch_order  # noqa: E402
from cnnprof.profiler.sampler import SignalSampler  # noqa: E402
from cnnprof.profiler.spans import SpanRecorder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop", default="tuned", choices=("seed", "tuned"))
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    parser.add_argument("--train-images", type=int, default=None, help="default: 54,000 on cuda, 4,096 on cpu")
    parser.add_argument("--intervals", default="1", help="sampler intervals in ms, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="epochs per side")
    parser.add_argument("--pyinstrument", action="store_true", help="add a pyinstrument side (1 ms)")
    parser.add_argument(
        "--null", action="store_true", help="add a side whose SIGALRM handler does nothing (1 ms): delivery cost"
    )
    args = parser.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    n = args.train_images or (54_000 if device == "cuda" else 4_096)
    data = load_dataset("synthetic", download=False, train_images=n, test_images=512)
    cfg = LoopConfig(loop=args.loop)
    trainer: Any = make_trainer("torch", device, data, cfg, SpanRecorder())

    def epoch(k: int) -> float:
        order = epoch_order(cfg.seed, k, len(data.y_train))
        t = time.perf_counter()
        trainer.train_epoch(order, lambda: None)
        return time.perf_counter() - t

    epoch(0)  # warm-up: cuDNN autotune, allocator
    sides: list[tuple[str, Any]] = [("none", None)]
    sides += [(f"sampler {ms} ms", float(ms)) for ms in args.intervals.split(",")]
    if args.null:
        sides.append(("null handler 1 ms", "null"))
    if args.pyinstrument:
        sides.append(("pyinstrument 1 ms", "pyinstrument"))
    times: dict[str, list[float]] = {name: [] for name, _ in sides}
    samples: dict[str, list[tuple[int, int]]] = {name: [] for name, _ in sides}
    k = 1
    shuffle = random.Random(0).shuffle
    for _ in range(args.rounds):
        order = list(sides)
        shuffle(order)  # no side always runs first (GPU clocks, caches, a noisy neighbour's timing)
        for name, how in order:
            if how is None:
                times[name].append(epoch(k))
            elif how == "null":
                signal.signal(signal.SIGALRM, lambda signum, frame: None)
                signal.siginterrupt(signal.SIGALRM, False)  # as the sampler does
                signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
                times[name].append(epoch(k))
                signal.setitimer(signal.ITIMER_REAL, 0.0, 0.0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
            elif how == "pyinstrument":
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.001, async_mode="disabled", use_timing_thread=True)
                profiler.start()
                times[name].append(epoch(k))
                profiler.stop()
            else:
                sampler = SignalSampler(how / 1e3)
                sampler.start(sys._getframe())
                times[name].append(epoch(k))
                sampler.stop()
                samples[name].append((sampler.sample_count, sampler.handler_ns))
            k += 1
    base = statistics.median(times["none"])
    print(f"torch {torch.__version__} on {device}, loop {args.loop}, {n:,} images, {args.rounds} epochs per side")
    print("ratio: median over rounds of (this side's epoch / the same round's unprofiled epoch), with its quartiles")
    print(
        f"  {'side':<20}{'epoch s':>9}{'ratio':>8}{'quartiles':>14}{'samples':>9}{'handler us':>12}{'rest us':>9}"
        "  (per sample)"
    )
    for name, _ in sides:
        median = statistics.median(times[name])
        ratios = [t / b for t, b in zip(times[name], times["none"])]
        q1, ratio, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        line = f"  {name:<20}{median:>9.4f}{ratio:>8.3f}{f'{q1:.3f}-{q3:.3f}':>14}"
        if samples[name]:
            count = statistics.median(c for c, _ in samples[name])
            handler_us = sum(h for _, h in samples[name]) / max(1, sum(c for c, _ in samples[name])) / 1e3
            added_us = (ratio - 1) * base / max(1, count) * 1e6
            line += f"{count:>9.0f}{handler_us:>12.1f}{added_us - handler_us:>9.1f}"
        print(line)


if __name__ == "__main__":
    main()
