"""A small torch training script for `cnnprof profile` tests (runs in about a second on a CPU).

A tiny MLP on random 16x16 "images"; the Dataset's `__getitem__` runs a per-sample Python
transform (a 3x3 box blur in pure Python, deliberately slow: the input pipeline should dominate),
the default DataLoader collates, and the loop reads the loss with a per-batch `.item()`.

    python tests/scripts/train_torch.py [--epochs N] [--samples N] [--exit-code N]
"""

from __future__ import annotations

import argparse
import random
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

SIDE = 16


def box_blur(pixels: list[float]) -> list[float]:
    """3x3 box blur of a SIDE x SIDE image held as a flat list: per-pixel Python, slow on purpose."""
    out = []
    for y in range(SIDE):
        for x in range(SIDE):
            total, n = 0.0, 0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < SIDE and 0 <= xx < SIDE:
                        total += pixels[yy * SIDE + xx]
                        n += 1
            out.append(total / n)
    return out


class NoisyImages(Dataset):
    def __init__(self, n: int, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.images = [[rng.random() for _ in range(SIDE * SIDE)] for _ in range(n)]
        self.labels = [rng.randrange(10) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pixels = box_blur(self.images[i])
        return torch.tensor(pixels).view(1, SIDE, SIDE), self.labels[i]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--exit-code", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a tiny model: one thread is fastest and keeps timings steady

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(NoisyImages(args.samples), batch_size=32, shuffle=True)
    for epoch in range(args.epochs):
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()  # ITEM-LINE: the per-batch sync the tests look for
        print(f"epoch {epoch}: loss {total / len(loader):.4f}")
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
