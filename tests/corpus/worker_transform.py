"""Input-bound by construction, in the workers: the per-sample transform of per_sample_transform.py
(a 3x3 box blur in pure Python) in a Dataset read by two DataLoader workers, feeding a tiny model.
The workers cannot keep up: the main process waits on their queue for most of each step.

Expected verdict: input-bound, cause "wait"; the finding names the transform and `__getitem__`
from the WORKERS' stack samples (the main process only ever shows the wait) and the share of the
step time the main process waited."""

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
    def __init__(self, n: int) -> None:
        rng = random.Random(0)
        self.images = [[rng.random() for _ in range(SIDE * SIDE)] for _ in range(n)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pixels = self.images[i]
        for _ in range(3):  # a blur strong enough that two workers cannot keep up, on any machine
            pixels = box_blur(pixels)
        return torch.tensor(pixels), i % 10


if __name__ == "__main__":
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(SIDE * SIDE, 16), nn.ReLU(), nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in DataLoader(Blurred(960), batch_size=32, num_workers=2):  # LOOP-LINE
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
