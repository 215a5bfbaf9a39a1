"""Lazy-graph by construction: MLX steps that are never evaluated until the end, so one eval
computes a graph built over all of them.

Expected: a lazy-graph finding naming the final eval line. With `--async-eval` each step's
graph is queued for evaluation (`mx.async_eval`) and the one blocking eval stays at the end:
no lazy-graph then."""

import sys

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

mx.set_default_device(mx.cpu)
mx.random.seed(0)
model = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 10))
opt = optim.SGD(learning_rate=0.05)
x, y = mx.random.normal((128, 128)), mx.random.randint(0, 10, (128,))
mx.eval(model.parameters(), x, y)


def loss_fn(m: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return nn.losses.cross_entropy(m(x), y).mean()


grad_fn = nn.value_and_grad(model, loss_fn)
total = mx.array(0.0)
for _ in range(30):
    loss, grads = grad_fn(model, x, y)
    opt.update(model, grads)
    total = total + loss
    if "--async-eval" in sys.argv:
        mx.async_eval(model.parameters(), opt.state, total)
mx.eval(model.parameters(), opt.state, total)  # EVAL-LINE
