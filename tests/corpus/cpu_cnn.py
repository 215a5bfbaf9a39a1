"""Compute-bound by construction: a small CNN on the CPU, batches sliced from tensors made up
front, the loss read with .item() every step (a CPU tensor: no sync).

Expected verdict: compute-bound; no sync finding."""

import torch
from torch import nn

torch.manual_seed(0)
torch.set_num_threads(1)
x, y = torch.randn(512, 1, 28, 28), torch.randint(0, 10, (512,))
model = nn.Sequential(
    nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for _ in range(2):
    for i in range(0, 512, 64):
        loss = nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"loss {loss.item():.3f}")  # ITEM-LINE
