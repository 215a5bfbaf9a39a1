"""DDP training of a CNN on synthetic data, for the 2-GPU session (session6_ddp2.sh): one rank per
GPU (LOCAL_RANK), NCCL (gloo on a machine without GPUs, for a dry run on the CPU).

    torchrun --standalone --nproc-per-node 2 benchmarks/gpu/ddp_cnn.py --model study
    cnnprof profile --nproc-per-node 2 -- benchmarks/gpu/ddp_cnn.py --model heavy --slow-rank 1

Models: `study` is the study's CNN (cnnprof.models.cnn_torch.SeedCNN, MNIST-shaped 1x28x28);
`heavy` is a wider, deeper CNN on 3x64x64 images (~25 M parameters), whose gradient all-reduce is
large enough to matter. Each step: forward, backward (DDP's bucketed all-reduce, C++), Adam, and
the loss all-reduced for logging (a Python `dist.all_reduce`, which cnnprof records, with a
`.item()` that waits for it). `--slow-rank R` makes rank R slower each step: `--extra-host-ms` of
host work (a sleep: a slow input pipeline on one rank), and/or `--extra-matmuls` bf16 4096x4096
matmuls on its GPU before its backward pass. The others wait for it in DDP's all-reduce and, on the
host, in their `.item()`. cnnprof's rank-imbalance sees the host-side kind; GPU-only work leaves every
host waiting in its own sync (the slow rank's for its GPU, the others' for NCCL), which host timing
cannot tell apart. Prints the median step time per rank.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def heavy_cnn(classes: int = 100) -> nn.Module:
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip

    return nn.Sequential(
        block(3, 128), block(128, 256), block(256, 512), block(512, 512),
        nn.Flatten(), nn.Linear(512 * 4 * 4, 2048), nn.ReLU(), nn.Linear(2048, classes),
    )  # fmt: skip


def extra_work(device: torch.device, n: int) -> None:
    a = torch.randn(4096, 4096, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
    for _ in range(n):
        a = a @ a
        a = a / a.norm()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("study", "heavy"), default="study")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--slow-rank", type=int, default=None)
    parser.add_argument("--extra-matmuls", type=int, default=0)
    parser.add_argument("--extra-host-ms", type=float, default=0.0)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    if args.model == "study":
        from cnnprof.models.cnn_torch import SeedCNN

        model, shape, classes = SeedCNN(1, 10, 28), (1, 28, 28), 10
    else:
        model, shape, classes = heavy_cnn(), (3, 64, 64), 100
    model = DistributedDataParallel(model.to(device), device_ids=[local] if cuda else None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch_size, *shape, device=device)
    y = torch.randint(0, classes, (args.batch_size,), device=device)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        if args.slow_rank == rank:
            time.sleep(args.extra_host_ms / 1e3)  # the slow rank's host work
            extra_work(device, args.extra_matmuls)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        logged = loss.detach().clone()
        dist.all_reduce(logged)
        logged.item()  # the host waits for the step (and the all-reduce) here
        times.append(time.perf_counter() - start)
    steady = times[len(times) // 10 :]
    print(f"rank {rank}: median step {statistics.median(steady) * 1e3:.2f} ms over {len(steady)} steps", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
