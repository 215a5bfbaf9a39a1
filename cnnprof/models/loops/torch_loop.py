"""The PyTorch loops (CPU, CUDA, MPS).

seed  - the study's loop: a DataLoader with default collate over device-resident tensors (one
        index + `torch.stack` per image, on the host), and `.item()` for loss and accuracy every
        batch (a host-device sync per batch).
tuned - batches sliced from the device-resident tensors by a device permutation, loss and
        correct counts accumulated on the device and read once per epoch, fused Adam, and
        channels_last on CUDA. No `torch.compile`: on the H100 it made this small model slower
        (0.48 s vs 0.35 s per epoch, 33 s first epoch, on the H100).
fast  - tuned, plus what a launch-bound step needs: on CUDA the whole training step (forward,
        backward, fused Adam, the running totals) captured as CUDA graphs and replayed, each
        batch copied into static buffers (torch_graph.py), with the model compiled by Inductor
        inside the captured step (`torch.compile(model, dynamic=False)`: its fused kernels, our
        graph). Chosen over `torch.compile(mode="reduce-overhead")`, whose CUDA graphs cover the
        model's forward and backward but not the fused Adam step and the running totals; the
        compile costs ~25 s in the first epoch on the H200. On CPU and MPS there is no graph and
        no compile: the tuned step runs eagerly on the static buffers (said in run.json's
        config.loop_notes). Not exercised here: the compile inside the capture (CUDA only).
All train the same model on the same data in the same order (common.epoch_order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..cnn_torch import SeedCNN, count_parameters
from ..data import DatasetSplits
from ..recorder import Recorder as SpanRecorder
from .common import LoopConfig, n_batches
from .torch_graph import FastSteps, Totals


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class TorchTrainer:
    def __init__(self, data: DatasetSplits, cfg: LoopConfig, device: str, rec: SpanRecorder) -> None:
        torch.manual_seed(cfg.seed)
        self.cfg, self.rec = cfg, rec
        self.device = torch.device(device)
        self.tuned = cfg.loop != "seed"  # fast is tuned plus the captured step
        on_cuda = self.device.type == "cuda"
        # channels_last helps cuDNN's convolutions; on CPU and MPS it was not faster.
        self.memory_format = torch.channels_last if self.tuned and on_cuda else torch.contiguous_format
        model = SeedCNN(data.channels, data.num_classes, data.height)
        self.parameters = count_parameters(model)
        self.model = model.to(self.device, memory_format=self.memory_format)
        graphs = cfg.loop == "fast" and on_cuda
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, fused=self.tuned or None, capturable=graphs
        )
        self.notes: list[str] = []

        def to_device(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(x).to(self.device)

        self.x_train, self.y_train = to_device(data.x_train), to_device(data.y_train)
        self.x_val, self.y_val = to_device(data.x_val), to_device(data.y_val)
        self.x_test, self.y_test = to_device(data.x_test), to_device(data.y_test)
        synchronize(self.device)
        self.fast: FastSteps | None = None
        if cfg.loop == "fast":
            self._set_up_fast(graphs)

    def _set_up_fast(self, graphs: bool) -> None:
        n, bs = len(self.y_train), self.cfg.batch_size
        sizes = {min(bs, n)} | ({n % bs} if n % bs else set())
        self.totals = Totals(self.device)
        # On CUDA the captured step runs the model compiled by Inductor (static shapes, one
        # specialisation per batch size; no CUDA graphs of its own: the whole step is ours): it
        # fuses the pooling, bias-gradient reductions and pointwise ops that the eager graph
        # replays one kernel each (H200: 0.154 -> 0.125 s per epoch; docs/BENCHMARKS.md).
        # fallback_random: its dropout draws from the same generator as eager's (same masks as tuned).
        stepped: nn.Module = self.model
        if graphs and self.device.type == "cuda":
            import torch._inductor.config as inductor_config

            inductor_config.fallback_random = True
            stepped = torch.compile(self.model, dynamic=False)  # type: ignore[assignment]
        self.fast = FastSteps(
            stepped, self.optimizer, self.totals, self.x_train, self.y_train, sizes, self.memory_format
        )
        # Captured at the first epoch's start, so the capture is part of the first step and epoch
        # (as cuDNN's and MLX's first-call costs are): the median epoch leaves it out.
        self.capture_pending = graphs
        if not graphs:
            self.notes.append(
                f"fast on {self.device.type}: no CUDA graphs here; the tuned loop's step runs eagerly "
                "on static buffers that each batch is copied into"
            )
            return
        # What a launch-bound step also gets from its advice (cnnprof's compute levers), keeping the
        # fp32 weights: cuDNN picks its fastest convolution algorithms for these fixed shapes (the
        # autotuning happens in the capture's warm-up), and matmuls may use TF32 as convolutions do.
        # Process-wide settings: each run of `cnnprof run` / `bench` is a process of its own.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        self.notes.append(
            f"fast on cuda: the whole training step captured as CUDA graphs (batch sizes "
            f"{sorted(sizes, reverse=True)}), replayed once per batch, its model compiled by torch.compile "
            "(Inductor, dynamic=False); fused Adam (capturable), channels_last, cudnn.benchmark"
        )
        self.notes.append(
            f"arithmetic: fp32 weights; TF32 in convolutions (torch.backends.cudnn.allow_tf32="
            f"{torch.backends.cudnn.allow_tf32}, cuDNN's default, as in seed and tuned) and in matmuls "
            f"(torch.backends.cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}; seed and tuned: fp32)"
        )

    # -- batches ------------------------------------------------------------------------------
    def _batches(
        self, x: torch.Tensor, y: torch.Tensor, order: np.ndarray | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields (x, y) batches, each fetch recorded as a `data` span."""
        bs, rec = self.cfg.batch_size, self.rec
        if not self.tuned:
            indices = order.tolist() if order is not None else range(len(y))
            # The study's input path: default collate indexes and stacks one image at a time.
            loader = iter(DataLoader(TensorDataset(x, y), batch_size=bs, sampler=indices))
            for _ in range(len(loader)):
                with rec.span("data", "collate"):
                    batch = next(loader)
                yield batch
            return
        perm = torch.from_numpy(order).to(self.device) if order is not None else None
        for start in range(0, len(y), bs):
            with rec.span("data", "slice"):
                if perm is None:
                    xb, yb = x[start : start + bs], y[start : start + bs]
                else:
                    idx = perm[start : start + bs]
                    xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            yield xb.contiguous(memory_format=self.memory_format), yb

    def _zero_totals(self, per_batch_sync: bool) -> tuple[torch.Tensor | float, torch.Tensor | int]:
        """Running loss and correct count: Python numbers when read every batch, else on the device."""
        if per_batch_sync:
            return 0.0, 0
        return torch.zeros((), device=self.device), torch.zeros((), device=self.device, dtype=torch.int64)

    def _read_totals(self, loss_sum: torch.Tensor | float, correct: torch.Tensor | int) -> tuple[float, int]:
        if isinstance(loss_sum, torch.Tensor):
            with self.rec.sync("item"):
                return loss_sum.item(), int(correct.item())  # type: ignore[union-attr]
        return float(loss_sum), int(correct)

    # -- phases -------------------------------------------------------------------------------
    def train_epoch(self, order: np.ndarray, on_batch: Callable[[], None]) -> tuple[float, float]:
        if self.fast is not None:
            return self._train_epoch_fast(self.fast, order, on_batch)
        rec, model, opt = self.rec, self.model, self.optimizer
        per_batch_sync = self.cfg.sync_policy == "batch"
        model.train()
        loss_sum, correct = self._zero_totals(per_batch_sync)
        batches = self._batches(self.x_train, self.y_train, order)
        for index in range(n_batches(len(order), self.cfg.batch_size)):
            rec.batch = index
            with rec.span("batch", "train"):
                xb, yb = next(batches)
                with rec.span("forward"):
                    out = model(xb)
                    loss = F.nll_loss(out, yb)
                with rec.span("backward"):
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                with rec.span("optimizer"):
                    opt.step()
                n_right = (out.argmax(1) == yb).sum()
                if per_batch_sync:
                    with rec.sync("item"):
                        loss_sum += loss.item() * len(yb)
                        correct += n_right.item()
                else:
                    loss_sum += loss.detach() * len(yb)
                    correct += n_right
            on_batch()
        total_loss, total_correct = self._read_totals(loss_sum, correct)
        return total_loss / len(order), total_correct / len(order)

    def _train_epoch_fast(
        self, steps: FastSteps, order: np.ndarray, on_batch: Callable[[], None]
    ) -> tuple[float, float]:
        """tuned's batches in tuned's order, each copied into its size's static buffers and
        stepped there; the totals accumulate inside the step and are read once."""
        rec, bs = self.rec, self.cfg.batch_size
        if self.capture_pending:
            with rec.span("phase", "graph_capture"):
                steps.capture(self.device)
            self.capture_pending = False
        graphed = steps.graphed
        self.model.train()
        self.totals.zero()
        perm = torch.from_numpy(order).to(self.device)
        for index, start in enumerate(range(0, len(order), bs)):
            rec.batch = index
            with rec.span("batch", "train"):
                with rec.span("data", "slice"):
                    idx = perm[start : start + bs]
                    static = steps[len(idx)]
                    static.load(self.x_train.index_select(0, idx), self.y_train.index_select(0, idx))
                if graphed:  # the batch span is the step (a replay calls no optimizer hook)
                    with rec.span("compiled", "graph_replay"):
                        static.run()
                else:
                    static.run()  # eager: the step hooks see its backward and optimizer step
            on_batch()
        total_loss, total_correct = self._read_totals(self.totals.loss, self.totals.correct)
        return total_loss / len(order), total_correct / len(order)

    @torch.inference_mode()
    def validate(self, on_batch: Callable[[], None]) -> tuple[float, float]:
        rec, model = self.rec, self.model
        per_batch_sync = self.cfg.sync_policy == "batch"
        model.eval()
        loss_sum, correct = self._zero_totals(per_batch_sync)
        for index, (xb, yb) in enumerate(self._batches(self.x_val, self.y_val, None)):
            rec.batch = index
            with rec.span("batch", "val"):
                out = model(xb)
                loss = F.nll_loss(out, yb, reduction="sum")
                n_right = (out.argmax(1) == yb).sum()
                if per_batch_sync:
                    with rec.sync("item"):
                        loss_sum += loss.item()
                        correct += n_right.item()
                else:
                    loss_sum += loss
                    correct += n_right
            on_batch()
        total_loss, total_correct = self._read_totals(loss_sum, correct)
        n = len(self.y_val)
        return total_loss / n, total_correct / n

    @torch.inference_mode()
    def test_batch(self, start: int, stop: int) -> int:
        self.model.eval()
        xb = self.x_test[start:stop].contiguous(memory_format=self.memory_format)
        right = (self.model(xb).argmax(1) == self.y_test[start:stop]).sum()
        with self.rec.sync("item"):
            return int(right.item())

    @torch.inference_mode()
    def predict_one(self, index: int) -> int:
        xb = self.x_test[index : index + 1].contiguous(memory_format=self.memory_format)
        predicted = self.model(xb).argmax(1)
        with self.rec.sync("item"):
            return int(predicted.item())

    def peak_memory_mb(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.device.type == "mps":
            return torch.mps.driver_allocated_memory() / 2**20
        return None
