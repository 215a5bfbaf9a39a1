"""A script that fails part-way, for `cnnprof profile` tests: the run directory must say `failed`."""

import torch


def train_step() -> None:
    x = torch.ones(4)
    x.sum().item()
    raise RuntimeError("boom from the profiled script")


if __name__ == "__main__":
    train_step()
