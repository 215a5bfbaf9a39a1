"""The study's CNN in PyTorch (NCHW input), layer for layer as the study's seed
model (docs/BENCHMARKS.md, "Next to the study").

Imported only by the torch backend, so torch is imported at the top.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The study's layer widths and dropout.
_CONV_CHANNELS = (20, 50, 100)
_KERNEL = 5
_DROPOUT = 0.3


class SeedCNN(nn.Module):
    """Three conv-ReLU-maxpool stages, then three Linear layers; returns log-probabilities.

    The Dropout after the last Linear (before LogSoftmax) is the study's: it lowers training
    accuracy but has no effect in eval mode.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        c1, c2, c3 = _CONV_CHANNELS
        pad = _KERNEL // 2
        self.conv1 = nn.Conv2d(in_channels, c1, _KERNEL, padding=pad)
        self.conv2 = nn.Conv2d(c1, c2, _KERNEL, padding=pad)
        self.conv3 = nn.Conv2d(c2, c3, _KERNEL, padding=pad)
        # Three 2x2 poolings, each rounding down: 28 -> 14 -> 7 -> 3, 32 -> 16 -> 8 -> 4.
        fc = (image_size // 8) ** 2 * c3
        self.fc1 = nn.Linear(fc, fc // 2)
        self.fc2 = nn.Linear(fc // 2, fc // 4)
        self.fc3 = nn.Linear(fc // 4, num_classes)
        self.dropout = nn.Dropout(_DROPOUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        x = torch.flatten(x, 1)  # C, H, W order
        x = F.relu(self.dropout(self.fc1(x)))
        x = self.dropout(self.fc2(x))
        x = self.dropout(self.fc3(x))
        return F.log_softmax(x, dim=1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
