"""Compute-bound by construction on MLX's CPU backend: an MLP trained with mx.eval every step.
On the CPU device the eval *is* the computation.

Expected verdict: compute-bound (no sync-bound, no lazy-graph)."""

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

mx.set_default_device(mx.cpu)
mx.random.seed(0)
model = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 10))
opt = optim.SGD(learning_rate=0.05)
x, y = mx.random.normal((128, 128)), mx.random.randint(0, 10, (128,))


def loss_fn(m: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return nn.losses.cross_entropy(m(x), y).mean()


grad_fn = nn.value_and_grad(model, loss_fn)
for _ in range(30):
    loss, grads = grad_fn(model, x, y)
    opt.update(model, grads)
    mx.eval(model.parameters(), opt.state, loss)  # EVAL-LINE
