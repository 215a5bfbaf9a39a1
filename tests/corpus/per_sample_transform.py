"""Input-bound by construction: a Dataset whose __getitem__ runs a per-sample transform in pure
Python (a 3x3 box blur, pixel by pixel) in the main process, feeding a tiny model.

Expected verdict: input-bound, naming the __getitem__ / transform lines (cause: per-sample work).
worker_transform.py runs the same dataset in two DataLoader workers."""

import random

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

SIDE = 12


def box_blur(pixels: list[float]) -> list[float]:  # TRANSFORM-DEF
    out = []
    for y in range(SIDE):
        for x in range(SIDE):
            total, n = 0.0, 0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if 0 <= y + dy < SIDE and 0 <= x + dx < SIDE:
                        total += pixels[(y + dy) * SIDE + x + dx]
                        n += 1
            out.append(total / n)
    return out


class Blurred(Dataset):
    def __init__(self, n: int, passes: int = 1) -> None:
        rng = random.Random(0)
        self.images = [[rng.random() for _ in range(SIDE * SIDE)] for _ in range(n)]
        self.passes = passes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pixels = self.images[i]
        for _ in range(self.passes):
            pixels = box_blur(pixels)
        return torch.tensor(pixels), i % 10  # TRANSFORM-LINE


def model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(SIDE * SIDE, 16), nn.ReLU(), nn.Linear(16, 10))
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


if __name__ == "__main__":
    model, opt = model_and_optimizer()
    for x, y in DataLoader(Blurred(640), batch_size=32):  # LOOP-LINE
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
