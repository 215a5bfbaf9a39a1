"""Input-bound by construction, the other cause: DataLoader workers that do almost nothing per
sample, and batches so small (one image) that the main process spends its fetch time receiving
them from the workers (unpickling, rebuilding the shared-memory tensors).

Expected verdict: input-bound, cause "transfer"; never "add workers" (it has 2)."""

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Images(Dataset):
    def __init__(self, n: int) -> None:
        self.x = torch.randn(n, 3, 32, 32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], i % 10


if __name__ == "__main__":
    torch.set_num_threads(1)
    model = nn.Linear(3 * 32 * 32, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    # Prefetching keeps the workers ahead of a main process that receives each batch and takes a
    # (small) step on it: the fetch time is the receiving, not waiting for the workers.
    loader = DataLoader(Images(600), batch_size=1, num_workers=2, prefetch_factor=8)
    for x, y in loader:  # LOOP-LINE
        loss = nn.functional.cross_entropy(model(x.flatten(1)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
