"""Trains a tiny model until killed: Python work (stack samples) and optimizer steps (hook spans)."""

import torch

torch.set_num_threads(1)
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x = torch.ones(16, 8)
while True:
    optimizer.zero_grad()
    model(x).sum().backward()
    optimizer.step()
