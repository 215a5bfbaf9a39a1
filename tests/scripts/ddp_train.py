"""A tiny DDP training script for the distributed tests (gloo, CPU, run under torchrun).

Each step: forward, backward (DDP all-reduces the gradients in C++), optimizer step, then the loss
all-reduced for logging. `--slow-rank R` makes rank R do extra work each step (a sleep, before the
logging all-reduce, so the others wait for it there); `--crash-rank R` makes rank R raise in step 3.
Every rank sleeps `--step-sleep` each step so that a step is long next to the scheduler's noise.
"""

import argparse
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def extra_work(seconds: float) -> None:
    time.sleep(seconds)  # the slow rank's extra work: the line rank-imbalance names


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--step-sleep", type=float, default=0.03)
    parser.add_argument("--slow-rank", type=int, default=None)
    parser.add_argument("--extra", type=float, default=0.15)
    parser.add_argument("--crash-rank", type=int, default=None)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 16), torch.randn(32, 4)
    for step in range(args.steps):
        if args.crash_rank == rank and step == 3:
            raise RuntimeError(f"rank {rank} crashed on purpose")
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        time.sleep(args.step_sleep)
        if args.slow_rank == rank:
            extra_work(args.extra)
        logged = loss.detach().clone()
        dist.all_reduce(logged)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
