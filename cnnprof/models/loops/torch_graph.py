"""The PyTorch fast loop's training step: static input buffers that each batch is copied into,
and on CUDA the whole step (forward, loss, backward, fused Adam, the epoch's running totals)
captured as one CUDA graph per batch shape and replayed.

The captured work is the tuned loop's, operation for operation: the same model in channels_last,
the same fused Adam (constructed with capturable=True, which a captured step requires; fused
Adam keeps its step counter on the device either way), the same dropout draws (the graph
advances the CUDA generator by the same offsets the eager kernels would). Gradients stay
allocated and are zeroed in place, so every graph and any eager call read the same `.grad`
tensors; zeroing then accumulating gives the same values as tuned's set-to-None then assign.

Capturing needs warm-up iterations, which train: the weights, the optimizer state, the
gradients, the totals and the RNG are saved before and restored in place after (`FreshState`),
so the first real batch starts from the same state as the tuned loop's.

On CPU and MPS there is no graph: `run` calls the same step eagerly on the same static buffers
(the tuned loop's step). The CPU tests exercise the batching, the copies, the state restore and,
with a stand-in for the graph, the capture-then-replay orchestration. Not
exercised off CUDA, and checked only on the GPU machine: the side-stream warm-up, the
`torch.cuda.graph` capture and replay themselves, and restoring the CUDA generator's state.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

WARMUP_ITERS = 3  # PyTorch's CUDA-graph notes warm up a few eager iterations before capture


class Totals:
    """The epoch's running loss (sum over images) and correct count, on the device."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)

    def zero(self) -> None:
        self.loss.zero_()
        self.correct.zero_()


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, totals: Totals
) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One training step on (x, y), all of it device work with no host sync, so it can be captured."""

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        out = model(x)
        loss = F.nll_loss(out, y)
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        totals.loss.add_(loss.detach() * len(y))
        totals.correct.add_((out.argmax(1) == y).sum())

    return step


class FreshState:
    """The state before warm-up: weights and RNG saved; the optimizer's state is known to be fresh.

    `restore` writes it back in place (a captured graph holds the tensors' addresses): weights
    copied back, Adam's step / exp_avg / exp_avg_sq zeroed (a fresh Adam's values), gradients
    zeroed, the generator reset.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
        if optimizer.state:
            raise ValueError("FreshState needs an optimizer that has not stepped yet")
        self.model, self.optimizer, self.device = model, optimizer, device
        self.weights = [p.detach().clone() for p in model.parameters()]
        self.rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()

    @torch.no_grad()
    def restore(self) -> None:
        for param, saved in zip(self.model.parameters(), self.weights, strict=True):
            param.copy_(saved)
            if param.grad is not None:
                param.grad.zero_()
        for state in self.optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    value.zero_()
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(self.rng, self.device)
        else:
            torch.set_rng_state(self.rng)


class StaticStep:
    """Static buffers for one batch shape, and the step that reads them: replayed as a CUDA graph
    once `capture` ran, else called eagerly."""

    def __init__(self, step: Callable[[torch.Tensor, torch.Tensor], None], x: torch.Tensor, y: torch.Tensor) -> None:
        self.step = step
        self.x, self.y = x, y
        self.graph: torch.cuda.CUDAGraph | None = None

    def load(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        self.x.copy_(xb)
        self.y.copy_(yb)

    def run(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.step(self.x, self.y)

    def warm_up(self, iters: int) -> None:
        """Eager iterations on a side stream, as PyTorch requires before capture (cuDNN and
        cuBLAS set up their workspaces, the optimizer creates its state)."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), warnings.catch_warnings():
            # capturable Adam warns when stepped outside a capture: these steps are the warm-up
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            for _ in range(iters):
                self.step(self.x, self.y)
        torch.cuda.current_stream().wait_stream(side)

    def capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        # thread_local: a profiler or telemetry thread touching CUDA does not break the capture
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.step(self.x, self.y)
        self.graph = graph


class FastSteps:
    """The fast loop's steps, one `StaticStep` per batch size (the full batch, and the last,
    shorter one when the epoch does not divide evenly), sharing the model, optimizer and totals."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        totals: Totals,
        x_sample: torch.Tensor,
        y_sample: torch.Tensor,
        batch_sizes: Iterable[int],
        memory_format: torch.memory_format,
    ) -> None:
        """`x_sample`/`y_sample` (at least the largest batch) fill the buffers, so that warm-up
        steps read real images and valid labels."""
        step = train_step(model, optimizer, totals)
        self.steps: dict[int, StaticStep] = {}
        for n in sorted(set(batch_sizes), reverse=True):
            x = torch.empty_like(x_sample[:n]).contiguous(memory_format=memory_format)
            y = torch.empty_like(y_sample[:n])
            self.steps[n] = StaticStep(step, x, y)
            self.steps[n].load(x_sample[:n], y_sample[:n])
        self.model, self.optimizer, self.totals = model, optimizer, totals

    def capture(self, device: torch.device) -> None:
        """Warms up and captures every batch size's graph, then restores the fresh state."""
        fresh = FreshState(self.model, self.optimizer, device)
        self.model.train()
        for static in self.steps.values():
            static.warm_up(WARMUP_ITERS)
            static.capture()
        torch.cuda.synchronize(device)
        fresh.restore()
        self.totals.zero()

    @property
    def graphed(self) -> bool:
        return all(static.graph is not None for static in self.steps.values())

    def __getitem__(self, batch_size: int) -> StaticStep:
        return self.steps[batch_size]
