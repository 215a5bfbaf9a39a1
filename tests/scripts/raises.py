"""A script that fails part-way, for `cnnprof profile` tests: the run directory must say `failed`."""

import torch


def train_step() -> None:
    w = torch.ones(4, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=0.1)
    for _ in range(3):
        (w * 2).sum().backward()
        optimizer.step()
    raise RuntimeError("boom from the profiled script")


if __name__ == "__main__":
    train_step()
