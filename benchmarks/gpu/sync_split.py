"""A CUDA loop with one `.item()` per step, in the two shapes the `sync-bound` rule tells apart.

    cnnprof profile -- benchmarks/gpu/sync_split.py device   # GPU work back to back: device-bound
    cnnprof profile -- benchmarks/gpu/sync_split.py serial   # host and GPU take turns: serialisation

`device`: each step queues two fp32 6144x6144 matmuls (~9 ms each on an H100) and reads one
element: the host waits at the `.item()` while the GPU works, and removing the sync would not
make the loop faster. `serial`: one matmul, then ~9 ms of host work after the sync; the GPU idles
while the host works, so the two take turns, and reading the value later (or not at all) would
let them overlap. Needs a CUDA GPU; run by benchmarks/gpu/session4_sampler.sh.
"""

from __future__ import annotations

import sys
import time

import torch

N = 6144
HOST_WORK_S = 0.009


def host_step(seconds: float) -> int:
    """Stands for per-step host work (augmentation, logging, a Python-side metric)."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def main(mode: str, seconds: float) -> None:
    a = torch.randn(N, N, device="cuda")
    total = 0.0
    steps = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        y = a @ a
        if mode == "device":
            y = y @ a
        total += y[0, 0].item()  # SYNC-LINE: one blocking read per step
        if mode == "serial":
            host_step(HOST_WORK_S)
        steps += 1
    print(f"{mode}: {steps} steps in {seconds:.0f} s (checksum {total:.3e})")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 8.0)
