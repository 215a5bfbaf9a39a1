"""A training loop whose batch size changes every 20 steps, its model compiled by torch.compile
(Inductor, the default backend: needs a C++ compiler on the CPU) with static shapes: each new size
recompiles. `cnnprof profile -- benchmarks/torch_compile_shapes.py` (docs/BENCHMARKS.md, issue 14)."""
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
step_model = torch.compile(model, dynamic=False)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for i in range(60):
    n = (16, 24, 40)[(i // 20) % 3]  # a new batch size every 20 steps
    x, y = torch.randn(n, 32), torch.randint(0, 10, (n,))
    loss = nn.functional.cross_entropy(step_model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
print("done", float(loss))
