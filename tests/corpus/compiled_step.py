"""Warm-up by construction: a torch.compile'd model (backend aot_eager: Dynamo traces and AOT
autograd builds the backward graph in the first step, no C compiler needed), then even steps.

Expected: a warmup finding for the first step, and a verdict judged without it (compute-bound)."""

import torch
from torch import nn

torch.manual_seed(0)
torch.set_num_threads(1)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
compiled = torch.compile(model, backend="aot_eager")
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
for _ in range(60):
    loss = nn.functional.cross_entropy(compiled(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
