"""Where the MLX training step's time goes on the GPU, and which way of running it is fastest
(issue 17: mlx_gpu `--loop fast` must beat tuned). On the GPU machine:

    python benchmarks/gpu/mlx_fast_variants.py [--shape mnist|cifar] [--variants ...] [--rounds 2]
    python benchmarks/gpu/mlx_fast_variants.py --knobs ,MLX_USE_CUDA_GRAPHS=0  # a process each
    python benchmarks/gpu/mlx_fast_variants.py --trace fast  # CUPTI's kernels for 20 steps

The study's CNN, batch 512, synthetic data on the device, Adam with bias correction, the state
passed to `mx.compile` as inputs and outputs, `mx.async_eval` after every compiled call. Variants:
  tuned     - the batch gathered eagerly (`x[idx]`), the compiled step, totals added eagerly
  sliced    - the batch's start taken from starts made once on the device, sliced and gathered
              inside the compiled step with the totals (the fast loop before window pooling)
  sliced-kN - sliced with N steps in one compiled call (the epoch's last batches one by one)
  fast      - sliced, pooling by `cnn_mlx.window_max_pool` (the fast loop's step; the loop also
              turns MLX's CUDA graphs off, a process setting: see --knobs)
Each variant prints its median epoch time (epochs 2..N) and its host time (until the loop's last
call returned, before the epoch's final eval): a host time close to the epoch time means the
host, not the GPU, sets the pace. `--knobs` runs the variants under each of MLX's CUDA settings
given (an empty one: MLX's defaults), each in a process of its own (MLX reads them once), in
alternating rounds. `--trace` needs torch with CUDA in the same environment: CUPTI records every
kernel of the process, MLX's too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from cnnprof.models.cnn_mlx import SeedCNN
from cnnprof.models.loops.mlx_loop import _loss_and_correct

BATCH = 512
Step = Callable[..., tuple[mx.array, mx.array]]


class Bench:
    def __init__(self, variant: str, shape: tuple[int, int], n: int) -> None:
        mx.random.seed(0)
        c, hw = shape
        self.model = SeedCNN(c, 10, hw, window_pool=variant == "fast")
        mx.eval(self.model.parameters())
        self.opt = optim.Adam(learning_rate=1e-3, bias_correction=True)
        self.state = [self.model.state, self.opt.state, mx.random.state]
        self.x = mx.random.normal((n, hw, hw, c))
        self.y = mx.random.randint(0, 10, (n,)).astype(mx.int32)
        mx.eval(self.x, self.y)
        self.n, self.variant = n, variant
        self.group = int(variant[8:]) if variant.startswith("sliced-k") else 1
        loss_and_grad = nn.value_and_grad(self.model, _loss_and_correct)
        compiled = partial(mx.compile, inputs=self.state, outputs=self.state)

        def train_step(xb: mx.array, yb: mx.array) -> tuple[mx.array, mx.array]:
            (loss, correct), grads = loss_and_grad(self.model, xb, yb)
            self.opt.update(self.model, grads)
            return loss, correct

        def sliced(size: int, steps: int) -> Step:
            def f(perm: mx.array, start: mx.array, ls: mx.array, cs: mx.array) -> tuple[mx.array, mx.array]:
                for j in range(steps):
                    idx = mx.slice(perm, start + j * size, (0,), (size,))
                    loss, correct = train_step(self.x[idx], self.y[idx])
                    ls, cs = ls + loss * size, cs + correct
                return ls, cs

            return compiled(f)

        self.step = compiled(train_step)
        self.sliced = {size: sliced(size, 1) for size in {BATCH, n % BATCH} - {0}}
        self.grouped = sliced(BATCH, self.group)
        self.starts = mx.arange(0, n, BATCH)

    def calls(self) -> list[tuple[int, int, int]]:
        """(first batch, batch size, steps) of each compiled call in an epoch."""
        out, i, full = [], 0, self.n // BATCH
        while i * BATCH < self.n:
            size = min(BATCH, self.n - i * BATCH)
            steps = self.group if size == BATCH and i + self.group <= full else 1
            out.append((i, size, steps))
            i += steps
        return out

    def epoch(self, on_call: Callable[[], None] = lambda: None) -> tuple[float, float]:
        """(epoch seconds, host seconds) of one epoch."""
        self.model.train()
        perm = mx.array(np.random.permutation(self.n).astype(np.int32))
        ls, cs = mx.array(0.0), mx.array(0)
        mx.eval(perm, ls, cs)
        t0 = time.perf_counter()
        for i, size, steps in self.calls():
            if self.variant == "tuned":
                idx = perm[i * BATCH : i * BATCH + size]
                loss, correct = self.step(self.x[idx], self.y[idx])
                ls, cs = ls + loss * size, cs + correct
            else:
                fn = self.grouped if steps > 1 else self.sliced[size]
                ls, cs = fn(perm, self.starts[i], ls, cs)
            mx.async_eval(self.state, ls, cs)
            on_call()
        host = time.perf_counter() - t0
        mx.eval(self.state, ls, cs)
        float(ls.item())
        return time.perf_counter() - t0, host


def run(variant: str, shape: tuple[int, int], n: int, epochs: int) -> tuple[float, float]:
    bench = Bench(variant, shape, n)
    times = [bench.epoch() for _ in range(epochs)]
    return statistics.median(t for t, _ in times[1:]), statistics.median(h for _, h in times[1:])


def trace(variant: str, shape: tuple[int, int], n: int, calls: int = 20) -> None:
    """The GPU's kernels over `calls` compiled calls of a warm epoch, by CUPTI (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    from cnnprof.profiler.gpu_trace import busy_intervals, device_events

    bench = Bench(variant, shape, n)
    bench.epoch()
    bench.n = calls * BATCH * bench.group  # the traced epoch: `calls` full calls
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        wall, host = bench.epoch()
    events = device_events(prof)
    busy = sum(e - s for s, e in busy_intervals((s, e) for _, s, e in events)) / 1e9
    steps = calls * bench.group
    by_name: dict[str, list[float]] = defaultdict(list)
    for name, s, e in events:
        by_name[name].append((e - s) / 1e6)
    print(f"trace {variant}: {steps} steps in {wall * 1e3:.1f} ms (host {host * 1e3:.1f} ms), GPU busy "
          f"{busy * 1e3:.1f} ms ({100 * busy / wall:.0f} %), {len(events) / steps:.0f} activities per step")
    for name, ms in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:20]:
        print(f"  {sum(ms) / steps:7.3f} ms/step  x{len(ms) / steps:5.1f}  {name[:110]}")


def knobs(args: argparse.Namespace) -> None:
    """The variants under each of MLX's CUDA settings, alternating, a process per setting."""
    for r in range(args.rounds):
        for knob in args.knobs.split(","):
            env = dict(os.environ, **dict([knob.split("=")])) if knob else dict(os.environ)
            cmd = [sys.executable, __file__, "--shape", args.shape, "--epochs", str(args.epochs),
                   "--rounds", "1", "--variants", args.variants, "--images", str(args.images)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("round")] or [out.stderr[-300:]]
            for ln in lines:
                print(f"round {r + 1} [{knob or 'default'}] {ln.split(' ', 2)[2]}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--images", type=int, default=54_000)
    p.add_argument("--shape", choices=("mnist", "cifar"), default="mnist")
    p.add_argument("--variants", default="tuned,sliced,sliced-k4,fast")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--knobs", metavar="SETTINGS", help="comma-separated NAME=VALUE, each in a process of its own")
    p.add_argument("--trace", metavar="VARIANT", help="CUPTI's kernels of 20 compiled calls of VARIANT")
    a = p.parse_args()
    shape = (1, 28) if a.shape == "mnist" else (3, 32)
    mx.set_default_device(mx.gpu if mx.metal.is_available() or mx.cuda.is_available() else mx.cpu)
    if a.knobs:
        return knobs(a)
    if a.trace:
        return trace(a.trace, shape, a.images)
    results: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in range(a.rounds):  # alternating rounds: the machine's drift hits every variant alike
        for v in a.variants.split(","):
            med, host = run(v, shape, a.images, a.epochs)
            results[v].append((med, host))
            print(f"round {r + 1} {a.shape} {v}: {med:.4f} s/epoch (host {host:.4f} s)", flush=True)
    for v, meds in results.items():
        print(f"{a.shape} {v}: median {statistics.median(m for m, _ in meds):.4f} s/epoch, host "
              f"{statistics.median(h for _, h in meds):.4f} s, over {len(meds)} rounds")


if __name__ == "__main__":
    main()
