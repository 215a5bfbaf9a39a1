"""A user-style CUDA training script for the verdict checks on the GPU machine (issue: findings on
any script). Not cnnprof's loop: a plain CNN on CIFAR-shaped random data held on the GPU, batches
sliced by a device permutation, Adam, no per-step sync unless asked.

    python benchmarks/gpu/user_cnn.py [--epochs N] [--cpu-logits] [--item-loss] [--width W]

`--cpu-logits` copies the logits to the host every step (`logits.cpu()`), `--item-loss` reads the
loss every step (`loss.item()`, the commonest one): each a per-step sync that drains the GPU's
queue. Prints each epoch's seconds (synchronised), so a side-by-side run with and
without the flag measures what the sync costs, to compare with what cnnprof says it costs.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn


def model_of(width: int) -> nn.Module:
    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4 * w, 10),
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--cpu-logits", action="store_true")
    p.add_argument("--item-loss", action="store_true")
    a = p.parse_args()
    torch.manual_seed(0)
    dev = torch.device("cuda")
    x = torch.randn(a.images, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (a.images,), device=dev)
    model = model_of(a.width).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(a.epochs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        perm = torch.randperm(a.images, device=dev)
        model.train()
        for i in range(0, a.images, a.batch):
            idx = perm[i : i + a.batch]
            logits = model(x[idx])
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if a.cpu_logits:
                logits.detach().cpu()  # CPU-LOGITS: a per-step device-to-host copy (a sync)
            if a.item_loss:
                running = loss.item()  # ITEM-LOSS: a per-step read of the loss (a sync)
        torch.cuda.synchronize()
        last = f" loss {running:.3f}" if a.item_loss else ""
        print(f"epoch {epoch} {time.perf_counter() - t0:.4f} s{last}", flush=True)


if __name__ == "__main__":
    main()
