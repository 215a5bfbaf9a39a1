"""Where the PyTorch fast loop's step spends its GPU time, and which of its choices pay (issue:
follow the findings to the floor). CUDA only; run on the GPU machine:

    python benchmarks/gpu/torch_fast_variants.py [--epochs 5] [--images 54000] [--shape mnist|cifar]

The study's CNN, batch 512, synthetic data on the GPU, Adam; every variant captures the whole
step as a CUDA graph (models/loops/torch_graph.py's FastSteps) and replays it once per batch.
Variants: channels_last or not, cudnn.benchmark or not, TF32 matmuls or not, batches gathered
straight into the static buffers (`index_select(..., out=)`), and the model compiled by
torch.compile (Inductor, no CUDA graphs of its own) inside the same captured step. Prints each
variant's median epoch time (epochs 2..N) and the heaviest GPU kernels of one epoch of some.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cnnprof.models.cnn_torch import SeedCNN
from cnnprof.models.loops.torch_graph import FastSteps, Totals

BATCH = 512


def run_variant(
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    channels_last: bool,
    bench: bool,
    tf32: bool,
    gather_out: bool = False,
    compile_mode: str | None = None,
) -> tuple[float, FastSteps]:
    torch.backends.cudnn.benchmark = bench
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(0)
    dev = x.device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = SeedCNN(x.shape[1], 10, x.shape[2]).to(dev).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=True)
    totals = Totals(dev)
    n = len(y)
    sizes = {BATCH, n % BATCH} - {0}
    stepped = torch.compile(model, mode=compile_mode) if compile_mode else model
    steps = FastSteps(stepped, opt, totals, x, y, sizes, fmt)  # type: ignore[arg-type]
    steps.model = model
    t0 = time.perf_counter()
    steps.capture(dev)
    print(f"  capture {time.perf_counter() - t0:.1f} s", flush=True)
    times = []
    for _ in range(epochs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        epoch(x, y, steps, gather_out)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), steps


def epoch(x: torch.Tensor, y: torch.Tensor, steps: FastSteps, gather_out: bool) -> None:
    n = len(y)
    perm = torch.randperm(n, device=x.device)
    for start in range(0, n, BATCH):
        idx = perm[start : start + BATCH]
        static = steps[len(idx)]
        if gather_out:
            torch.index_select(x, 0, idx, out=static.x)
            torch.index_select(y, 0, idx, out=static.y)
        else:
            static.load(x.index_select(0, idx), y.index_select(0, idx))
        static.run()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--images", type=int, default=54_000)
    p.add_argument("--shape", choices=("mnist", "cifar"), default="mnist")
    a = p.parse_args()
    c, hw = (1, 28) if a.shape == "mnist" else (3, 32)
    dev = torch.device("cuda")
    x = torch.randn(a.images, c, hw, hw, device=dev)
    y = torch.randint(0, 10, (a.images,), device=dev)
    variants = [
        ("fast (channels_last, cudnn.benchmark, tf32 matmuls)", dict(channels_last=True, bench=True, tf32=True)),
        ("contiguous", dict(channels_last=False, bench=True, tf32=True)),
        ("fast, gathered into the buffers", dict(channels_last=True, bench=True, tf32=True, gather_out=True)),
        ("contiguous, gathered", dict(channels_last=False, bench=True, tf32=True, gather_out=True)),
        ("fast, torch.compile default", dict(channels_last=True, bench=True, tf32=True, compile_mode="default")),
        ("contiguous, torch.compile default", dict(channels_last=False, bench=True, tf32=True, compile_mode="default")),
        (
            "fast, torch.compile max-autotune-no-cudagraphs",
            dict(channels_last=True, bench=True, tf32=True, compile_mode="max-autotune-no-cudagraphs"),
        ),
    ]
    for name, kw in variants:
        try:
            med, steps = run_variant(x, y, a.epochs, **kw)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - a variant that cannot run here is reported, not fatal
            print(f"{a.shape} {name}: failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        print(f"{a.shape} {name}: {med:.4f} s/epoch (median of epochs 2..{a.epochs})", flush=True)
        if name.startswith(("fast (", "contiguous,", "fast, torch.compile default")):
            kernels(x, y, steps, bool(kw.get("gather_out")))


def kernels(x: torch.Tensor, y: torch.Tensor, steps: FastSteps, gather_out: bool) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        epoch(x, y, steps, gather_out)
        torch.cuda.synchronize()
    events = [e for e in prof.profiler.kineto_results.events() if str(e.device_type()) != "DeviceType.CPU"]
    total: dict[str, list[float]] = {}
    for e in events:
        t = total.setdefault(e.name(), [0.0, 0])
        t[0] += e.duration_ns() / 1e6
        t[1] += 1
    busy = sum(v[0] for v in total.values())
    span = (max(e.end_ns() for e in events) - min(e.start_ns() for e in events)) / 1e6
    print(f"  one epoch traced: {len(events):,} GPU activities, {busy:.1f} ms of activity in {span:.1f} ms")
    for name, (ms, count) in sorted(total.items(), key=lambda kv: -kv[1][0])[:12]:
        print(f"    {ms:8.2f} ms  x{count:5d}  {name[:100]}", flush=True)


if __name__ == "__main__":
    main()
