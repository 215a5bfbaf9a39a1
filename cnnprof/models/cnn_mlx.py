"""The study's CNN in MLX (NHWC input), parameter for parameter equal to `cnn_torch.SeedCNN`.

Imported only by the MLX backend. `load_from_torch` copies a torch model's weights in, so both
frameworks can be checked to compute the same function.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np
from mlx import nn
from mlx.utils import tree_flatten

_CONV_CHANNELS = (20, 50, 100)
_KERNEL = 5
_DROPOUT = 0.3


@mx.custom_function
def window_max_pool(x: mx.array) -> mx.array:
    """2x2 max pooling, stride 2, rounding down (NHWC), as the maximum of the windows' four
    corners: the same function as `nn.MaxPool2d(2, 2)` in one elementwise kernel.

    Why (measured on an H200 with MLX's CUDA backend, benchmarks/gpu/mlx_fast_variants.py): MLX
    pools by a reduction over a transposed view, and its gradient by a mask, a count of each
    window's maxima and a division (or, where a side is odd, an as_strided view whose gradient is
    a scatter-add); in the training step those reductions and copies took 2.5 of the GPU's 3.8 ms.
    Here the forward pass is one elementwise maximum and the gradient (below) one elementwise
    select. Ties: every maximum of a window gets the window's gradient, where MLX shares it out
    and torch gives it to one; after a ReLU the tied maxima are zeros, whose gradient the ReLU
    drops, so the step's gradients are the same. Not measured on Metal.
    """
    windows = _windows(x)
    top = mx.maximum(windows[:, :, 0, :, 0], windows[:, :, 0, :, 1])
    return mx.maximum(top, mx.maximum(windows[:, :, 1, :, 0], windows[:, :, 1, :, 1]))


@window_max_pool.vjp
def _window_max_pool_vjp(x: mx.array, cotangent: mx.array, pooled: mx.array) -> mx.array:
    n, h, w, c = x.shape
    spread = (slice(None), slice(None), None, slice(None), None)
    grad = mx.where(_windows(x) == pooled[spread], cotangent[spread], 0.0).reshape(n, h // 2 * 2, w // 2 * 2, c)
    if h % 2 or w % 2:  # the odd last row or column belongs to no window
        grad = mx.pad(grad, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)])
    return grad


def _windows(x: mx.array) -> mx.array:
    """(N, H/2, 2, W/2, 2, C): each 2x2 window's four values (a view where H and W are even)."""
    n, h, w, c = x.shape
    if h % 2 or w % 2:
        x = x[:, : h // 2 * 2, : w // 2 * 2, :]
    return x.reshape(n, h // 2, 2, w // 2, 2, c)


class WindowMaxPool(nn.Module):
    """`window_max_pool` as a layer: the model's tree of parameters stays the same either way."""

    def __call__(self, x: mx.array) -> mx.array:
        return window_max_pool(x)


class SeedCNN(nn.Module):
    """Same layers, shapes and names as the torch model; `__call__` takes NHWC images.

    The features are flattened in MLX's natural H, W, C order, unlike torch's C, H, W: keeping
    the forward pass the plain NHWC computation (no transpose per step) matters in a profiler,
    whose MLX timings should be those of idiomatic MLX code. The one-off cost is paid in
    `load_from_torch`, which permutes fc1's input columns to match.
    """

    def __init__(
        self, in_channels: int, num_classes: int, image_size: int, window_pool: bool = False
    ) -> None:
        """`window_pool`: pool by `window_max_pool` instead of `nn.MaxPool2d` (the fast loop)."""
        super().__init__()
        c1, c2, c3 = _CONV_CHANNELS
        pad = _KERNEL // 2
        self.conv1 = nn.Conv2d(in_channels, c1, _KERNEL, padding=pad)
        self.conv2 = nn.Conv2d(c1, c2, _KERNEL, padding=pad)
        self.conv3 = nn.Conv2d(c2, c3, _KERNEL, padding=pad)
        fc = (image_size // 8) ** 2 * c3  # three 2x2 poolings, each rounding down
        self.fc1 = nn.Linear(fc, fc // 2)
        self.fc2 = nn.Linear(fc // 2, fc // 4)
        self.fc3 = nn.Linear(fc // 4, num_classes)
        self.pool = WindowMaxPool() if window_pool else nn.MaxPool2d(2, 2)
        self.dropout = nn.Dropout(_DROPOUT)

    def __call__(self, x: mx.array) -> mx.array:
        x = self.pool(nn.relu(self.conv1(x)))
        x = self.pool(nn.relu(self.conv2(x)))
        x = self.pool(nn.relu(self.conv3(x)))
        x = x.reshape(x.shape[0], -1)  # H, W, C order
        x = nn.relu(self.dropout(self.fc1(x)))
        x = self.dropout(self.fc2(x))
        x = self.dropout(self.fc3(x))
        return nn.log_softmax(x, axis=1)


def count_parameters(model: nn.Module) -> int:
    return sum(v.size for _, v in tree_flatten(model.parameters()))


def load_from_torch(mlx_model: SeedCNN, torch_model: Any) -> None:
    """Copy `torch_model`'s (a `cnn_torch.SeedCNN`) weights into `mlx_model`.

    Conv weights go from torch's (O, I, kh, kw) to MLX's (O, kh, kw, I); Linear weights share
    the (out, in) layout, except that fc1's input columns are reordered from torch's C, H, W
    flatten order to the H, W, C order of the MLX model. Raises ValueError if the shapes differ.
    """
    weights = {name: t.detach().cpu().numpy() for name, t in torch_model.state_dict().items()}
    for conv in ("conv1", "conv2", "conv3"):
        weights[f"{conv}.weight"] = weights[f"{conv}.weight"].transpose(0, 2, 3, 1)
    fc1 = weights["fc1.weight"]
    channels = torch_model.conv3.out_channels
    side = int(round((fc1.shape[1] // channels) ** 0.5))
    weights["fc1.weight"] = (
        fc1.reshape(fc1.shape[0], channels, side, side).transpose(0, 2, 3, 1).reshape(fc1.shape[0], -1)
    )
    # strict: every parameter present, with the same shape, or ValueError.
    mlx_model.load_weights([(name, mx.array(np.ascontiguousarray(w))) for name, w in weights.items()])
    mx.eval(mlx_model.parameters())
