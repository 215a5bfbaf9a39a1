"""Setup-heavy by construction: the data is converted to nested Python lists, value by value,
before a short training (the study's own code spent 14 s of 70 s this way).

Expected verdict: setup-heavy, naming the conversion lines."""

import numpy as np
import torch
from torch import nn

rng = np.random.default_rng(0)
raw = rng.random((2000, 400))
rows = [[float(v) for v in row] for row in raw]  # CONVERT-LINE
rows = [[v * 2.0 - 1.0 for v in row] for row in rows]  # CONVERT-LINE-2
x = torch.tensor(rows[:256], dtype=torch.float32)
y = torch.arange(256) % 4

torch.set_num_threads(1)
model = nn.Linear(400, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(20):
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
