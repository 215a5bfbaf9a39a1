"""What the collective hooks cost per call (profiler/distributed.py), on the CPU with gloo.

    .venv/bin/python benchmarks/collective_hook_cost.py

Part 1, the wrapper alone: a hooked `all_reduce` whose original does nothing (a stand-in module
with a no-op `all_reduce` and `Work.wait`), so the figure is the hook itself: re-entrancy guard,
two clock reads, the payload size, the backend (cached), the caller walk (one frame) and one list
append. Plain and hooked blocks alternate; the figure is the median paired difference.

Part 2, for real: 2 gloo ranks on this machine (two processes, a FileStore), `all_reduce` of one
float32 and of 1 MiB, plain and hooked blocks in ABBA order in both ranks at once, per-call medians
of rank 0. Gloo's own time varies by far more than the hook from block to block on a loaded
machine, so this part shows that the hook is lost in it rather than measuring it.

Measured (2026-12-01, the 2-core development VM, Python 3.11.7, torch 2.13.0+cpu, load average
9-12 from other sessions' test suites): wrapper alone +4.9 us per call (+3.7 to +4.9 us with
timeit; the sync hooks' Tensor.item measured +0.4 to +1.3 us at the same time); gloo all_reduce of
1 float 615 us plain, 609 us hooked; of 1 MiB 3185 us plain, 2072 us hooked (noise). See
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnnprof.profiler.distributed import CollectiveHooks  # noqa: E402
from cnnprof.profiler.spans import SpanRecorder  # noqa: E402

BLOCKS = 7


def _time_block(fn, arg, n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter_ns() - start) / n / 1e3  # us per call


def wrapper_alone(n: int = 20000) -> float:
    """Median over blocks of (hooked - plain) us per call, on a no-op original."""
    import torch

    class Work:
        def wait(self) -> None:
            return None

    def noop(tensor, *args, **kwargs):
        return None

    fake = types.SimpleNamespace(all_reduce=noop, Work=Work, get_backend=lambda: "gloo", is_initialized=lambda: True)
    tensor = torch.ones(1)
    diffs = []
    for _ in range(BLOCKS):
        plain = _time_block(fake.all_reduce, tensor, n)
        rec = SpanRecorder()
        hooks = CollectiveHooks(rec, 0)
        hooks.install(fake)  # type: ignore[arg-type]
        hooked = _time_block(fake.all_reduce, tensor, n)
        hooks.remove()
        diffs.append(hooked - plain)
    return statistics.median(diffs)


def _rank(rank: int, store: str, results: dict, n: int) -> None:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    out = {}
    for label, numel in (("1 float", 1), ("1 MiB", 262144)):
        t = torch.ones(numel)
        for _ in range(20):
            dist.all_reduce(t)  # warm-up
        plain_s, hooked_s = [], []
        calls = n if numel == 1 else n // 10
        for block in range(BLOCKS):
            # ABBA: plain first in even blocks, hooked first in odd ones (a later block is not favoured)
            for hooked in (False, True) if block % 2 == 0 else (True, False):
                hooks = CollectiveHooks(SpanRecorder(), rank)
                if hooked:
                    hooks.install(dist)
                dist.barrier()
                (hooked_s if hooked else plain_s).append(_time_block(dist.all_reduce, t, calls))
                hooks.remove()
        out[label] = (statistics.median(plain_s), statistics.median(hooked_s))
    dist.destroy_process_group()
    results[rank] = out


def two_ranks(n: int = 2000) -> dict:
    import torch.multiprocessing as mp

    store = os.path.join(tempfile.mkdtemp(), "store")
    manager = mp.Manager()
    results = manager.dict()
    procs = [mp.Process(target=_rank, args=(r, store, results, n)) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return dict(results[0])


def main() -> None:
    import platform

    import torch

    print(f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs, {platform.node()}")
    print(f"wrapper alone, added per call: {wrapper_alone():.2f} us (median of {BLOCKS} alternating blocks)")
    for label, (plain, hooked) in two_ranks().items():
        added = hooked - plain
        print(f"gloo 2 ranks, all_reduce of {label}: {plain:.1f} us plain, {hooked:.1f} us hooked ({added:+.1f} us)")


if __name__ == "__main__":
    main()
