"""Which way of compiling the MLX training step is fastest on the GPU (issue: follow the findings
to the floor; `--loop fast` was slower than tuned on the MNIST shape). Run on the GPU machine:

    python benchmarks/gpu/mlx_fast_variants.py [--epochs 5] [--images 54000] [--shape mnist|cifar]

The study's CNN, batch 512, synthetic data on the device, Adam with bias correction, the state
passed to `mx.compile` as inputs and outputs, `mx.async_eval` after every batch. Variants:
  tuned      - the batch gathered eagerly (`x[idx]`), the compiled step, totals added eagerly
  fast       - the batch's start as a new `mx.array(start)` each batch, sliced and gathered inside
               the compiled step with the totals (the loop's fast today)
  fast-idx   - the batch's indices sliced eagerly from the permutation (a lazy slice), gathered
               inside the compiled step with the totals
  fast-starts- the starts made once on the device (`mx.arange`), each batch's taken by indexing
Prints each variant's median epoch time (epochs 2..N).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from cnnprof.models.cnn_mlx import SeedCNN
from cnnprof.models.loops.mlx_loop import _loss_and_correct

BATCH = 512


def build(shape: tuple[int, int], n: int) -> tuple[SeedCNN, optim.Adam, list, mx.array, mx.array]:
    mx.random.seed(0)
    c, hw = shape
    model = SeedCNN(c, 10, hw)
    mx.eval(model.parameters())
    opt = optim.Adam(learning_rate=1e-3, bias_correction=True)
    x = mx.random.normal((n, hw, hw, c))
    y = mx.random.randint(0, 10, (n,)).astype(mx.int32)
    mx.eval(x, y)
    return model, opt, [model.state, opt.state, mx.random.state], x, y


def run(variant: str, shape: tuple[int, int], n: int, epochs: int) -> float:
    model, opt, state, x, y = build(shape, n)
    loss_and_grad = nn.value_and_grad(model, _loss_and_correct)
    compiled = partial(mx.compile, inputs=state, outputs=state)

    def train_step(xb: mx.array, yb: mx.array) -> tuple[mx.array, mx.array]:
        (loss, correct), grads = loss_and_grad(model, xb, yb)
        opt.update(model, grads)
        return loss, correct

    step = compiled(train_step)
    sizes = {BATCH, n % BATCH} - {0}

    def by_start(size: int):  # noqa: ANN202
        def f(perm, start, ls, cs):  # noqa: ANN001, ANN202
            idx = mx.slice(perm, start, (0,), (size,))
            loss, correct = train_step(x[idx], y[idx])
            return ls + loss * size, cs + correct

        return compiled(f)

    def by_idx(idx, ls, cs):  # noqa: ANN001, ANN202
        loss, correct = train_step(x[idx], y[idx])
        return ls + loss * idx.size, cs + correct

    sliced = {size: by_start(size) for size in sizes}
    gathered = compiled(by_idx)
    starts_dev = mx.arange(0, n, BATCH)
    times = []
    for _ in range(epochs):
        model.train()
        perm = mx.array(np.random.permutation(n).astype(np.int32))
        ls, cs = mx.array(0.0), mx.array(0)
        mx.eval(perm, ls, cs)
        t0 = time.perf_counter()
        for i, start in enumerate(range(0, n, BATCH)):
            size = min(BATCH, n - start)
            if variant == "tuned":
                idx = perm[start : start + BATCH]
                loss, correct = step(x[idx], y[idx])
                ls, cs = ls + loss * size, cs + correct
            elif variant == "fast":
                ls, cs = sliced[size](perm, mx.array(start), ls, cs)
            elif variant == "fast-starts":
                ls, cs = sliced[size](perm, starts_dev[i], ls, cs)
            else:  # fast-idx
                ls, cs = gathered(perm[start : start + BATCH], ls, cs)
            mx.async_eval(state, ls, cs)
        mx.eval(state, ls, cs)
        float(ls.item())
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--images", type=int, default=54_000)
    p.add_argument("--shape", choices=("mnist", "cifar"), default="mnist")
    p.add_argument("--variants", default="tuned,fast,fast-idx,fast-starts")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    shape = (1, 28) if a.shape == "mnist" else (3, 32)
    mx.set_default_device(mx.gpu if mx.metal.is_available() or mx.cuda.is_available() else mx.cpu)
    results: dict[str, list[float]] = {}
    for r in range(a.rounds):  # alternating rounds: the machine's drift hits every variant alike
        for v in a.variants.split(","):
            med = run(v, shape, a.images, a.epochs)
            results.setdefault(v, []).append(med)
            print(f"round {r + 1} {a.shape} {v}: {med:.4f} s/epoch", flush=True)
    for v, meds in results.items():
        print(f"{a.shape} {v}: median {statistics.median(meds):.4f} s/epoch over {len(meds)} rounds")


if __name__ == "__main__":
    main()
