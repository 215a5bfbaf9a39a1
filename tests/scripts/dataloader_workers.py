"""A DataLoader with num_workers=2 whose dataset does a per-sample transform in Python (the
workers' work), for tests/test_children.py. `spawn` as the first argument picks that start method."""

import sys

import torch
from torch.utils.data import DataLoader, Dataset


def transform(x: torch.Tensor) -> torch.Tensor:
    for _ in range(3000):  # ~ms of Python per sample: what a per-sample augmentation costs
        x = x + 0.0
    return x


class Transformed(Dataset):
    def __len__(self) -> int:
        return 48

    def __getitem__(self, i: int) -> torch.Tensor:
        return transform(torch.full((4,), float(i)))


if __name__ == "__main__":
    context = sys.argv[1] if len(sys.argv) > 1 else None
    total = 0.0
    for batch in DataLoader(Transformed(), batch_size=8, num_workers=2, multiprocessing_context=context):
        total += float(batch.sum())
    print(total)
