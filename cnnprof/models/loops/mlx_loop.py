"""The MLX loops (GPU: Metal on macOS, CUDA on Linux; and CPU).

All loops run the same compiled training step (model, optimizer and random state captured by
`mx.compile`) on batches taken from device-resident arrays, as the study did. seed and tuned
differ in the sync policy alone:
seed  - `mx.eval` of the step's results and `.item()` of loss and accuracy every batch (the study).
tuned - `mx.async_eval` every batch (queues the work without waiting), loss and correct counts
        accumulated as arrays and read once per epoch.
lazy  - (--sync lazy) no evaluation until the epoch ends, as the study tried: the graph grows
        with every batch and the epoch-end eval pays for all of it.
fast  - tuned with the batch slicing and the running totals inside the compiled function: it
        takes the epoch's permutation and the batch's start index as inputs (`mx.slice` at a
        dynamic start; the starts made once on the device), gathers the batch, steps and adds to
        the totals, so each batch is one compiled call (one function per batch size: the last
        batch is shorter). Two more changes, from a GPU trace of tuned's step on an H200
        (docs/BENCHMARKS.md, issue 17): the pooling by `cnn_mlx.window_max_pool` (the same
        function; MLX's pooling reductions were 2.5 of the step's 3.8 ms of GPU time), and on
        CUDA MLX's CUDA graphs off (`MLX_USE_CUDA_GRAPHS=0`): the step is ~140 small kernels and
        the host sets its pace; recording them into graphs cost the host 6 ms a step against 4 ms
        for launching them one by one.
MLX's Adam skips bias correction by default; it is switched on to train like PyTorch's Adam.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from ..cnn_mlx import SeedCNN, count_parameters
from ..data import DatasetSplits, to_nhwc
from ..recorder import Recorder as SpanRecorder
from .common import LoopConfig, n_batches


def _loss_and_correct(model: nn.Module, x: mx.array, y: mx.array) -> tuple[mx.array, mx.array]:
    log_probs = model(x)
    loss = -mx.take_along_axis(log_probs, y[:, None], axis=1).mean()
    return loss, (mx.argmax(log_probs, axis=1) == y).sum()


def _cuda_graphs_off() -> str:
    """Turn MLX's CUDA graphs off for this process, unless the user chose: MLX reads the variable
    once, at its first kernel, which a run's trainer launches after this. In a process that used
    MLX before (the Python API in a notebook), the note says it may have come too late."""
    chosen = os.environ.setdefault("MLX_USE_CUDA_GRAPHS", "0")
    if chosen != "0":
        return f"fast on CUDA: MLX_USE_CUDA_GRAPHS={chosen} as set (the fast loop turns them off otherwise)"
    late = (
        " (MLX held arrays before the loop: if it had run a kernel, the setting came too late; set "
        "MLX_USE_CUDA_GRAPHS=0 before the first MLX call)"
        if mx.get_active_memory()
        else ""
    )
    return f"fast on CUDA: MLX's CUDA graphs off (MLX_USE_CUDA_GRAPHS=0): kernels launched one by one{late}"


class MlxTrainer:
    def __init__(self, data: DatasetSplits, cfg: LoopConfig, device: str, rec: SpanRecorder) -> None:
        fast = cfg.loop == "fast"
        on_cuda = device == "gpu" and mx.cuda.is_available()
        self.notes: list[str] = []
        if fast and on_cuda:
            self.notes.append(_cuda_graphs_off())
        mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
        mx.random.seed(cfg.seed)
        self.cfg, self.rec = cfg, rec
        self.model = SeedCNN(data.channels, data.num_classes, data.height, window_pool=fast)
        mx.eval(self.model.parameters())
        self.parameters = count_parameters(self.model)
        self.optimizer = optim.Adam(learning_rate=cfg.lr, bias_correction=True)

        # NHWC by transposing CHW (the study reshaped CIFAR without the transpose).
        def to_device(x: np.ndarray, images: bool = True) -> mx.array:
            return mx.array(to_nhwc(x) if images else x.astype(np.int32))

        self.x_train, self.y_train = to_device(data.x_train), to_device(data.y_train, False)
        self.x_val, self.y_val = to_device(data.x_val), to_device(data.y_val, False)
        self.x_test, self.y_test = to_device(data.x_test), to_device(data.y_test, False)
        mx.eval(self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)

        loss_and_grad = nn.value_and_grad(self.model, _loss_and_correct)
        self.state = [self.model.state, self.optimizer.state, mx.random.state]
        compiled = partial(mx.compile, inputs=self.state, outputs=self.state)

        def train_step(x: mx.array, y: mx.array) -> tuple[mx.array, mx.array]:
            (loss, correct), grads = loss_and_grad(self.model, x, y)
            self.optimizer.update(self.model, grads)
            return loss, correct

        def sliced_step(size: int) -> Callable[..., tuple[mx.array, mx.array]]:
            def step(
                perm: mx.array, start: mx.array, loss_sum: mx.array, correct_sum: mx.array
            ) -> tuple[mx.array, mx.array]:
                idx = mx.slice(perm, start, (0,), (size,))
                loss, correct = train_step(self.x_train[idx], self.y_train[idx])
                return loss_sum + loss * size, correct_sum + correct

            return compiled(step)

        self.step = compiled(train_step)
        self.fast_steps: dict[int, Callable[..., tuple[mx.array, mx.array]]] = {}
        if fast:
            n, bs = self.y_train.size, cfg.batch_size
            self.fast_steps = {size: sliced_step(size) for size in {min(bs, n), n % bs} - {0}}
            # The batches' starts made once on the device: a new mx.array(start) per batch is a
            # host-to-device upload per step.
            self.fast_starts = mx.arange(0, n, bs)
            self.notes.append(
                f"fast on {device}: the whole step compiled with its batch slicing and running totals "
                f"inside (one compiled function per batch size {sorted(self.fast_steps, reverse=True)}); "
                "2x2 max pooling as the maximum of each window's four values (window_max_pool)"
            )
            if on_cuda:
                self.notes.append(
                    "arithmetic: fp32 weights; MLX's CUDA backend runs fp32 matmuls and convolutions in TF32 "
                    f"(MLX_ENABLE_TF32={os.environ.get('MLX_ENABLE_TF32', '1')}, its default 1), in seed and "
                    "tuned as in fast"
                )

    def _eval(self, *arrays: object) -> None:
        with self.rec.sync("eval"):
            mx.eval(*arrays)

    def train_epoch(self, order: np.ndarray, on_batch: Callable[[], None]) -> tuple[float, float]:
        if self.fast_steps:
            return self._train_epoch_fast(order, on_batch)
        rec, bs, policy = self.rec, self.cfg.batch_size, self.cfg.sync_policy
        self.model.train()
        perm = mx.array(order)
        loss_sum, correct_sum = mx.array(0.0), mx.array(0)
        for index in range(n_batches(len(order), bs)):
            rec.batch = index
            with rec.span("batch", "train"):
                with rec.span("data", "slice"):
                    idx = perm[index * bs : (index + 1) * bs]
                    xb, yb = self.x_train[idx], self.y_train[idx]
                with rec.span("compiled", "compiled_step"):
                    loss, correct = self.step(xb, yb)
                loss_sum = loss_sum + loss * len(idx)
                correct_sum = correct_sum + correct
                if policy == "batch":
                    self._eval(self.state, loss_sum, correct_sum)
                    with rec.sync("item"):
                        loss.item()  # the study read the batch loss every step
                elif policy == "epoch":
                    mx.async_eval(self.state, loss_sum, correct_sum)
            on_batch()
        self._eval(self.state, loss_sum, correct_sum)
        return loss_sum.item() / len(order), correct_sum.item() / len(order)

    def _train_epoch_fast(self, order: np.ndarray, on_batch: Callable[[], None]) -> tuple[float, float]:
        rec, bs, n = self.rec, self.cfg.batch_size, len(order)
        self.model.train()
        perm = mx.array(order)
        loss_sum, correct_sum = mx.array(0.0), mx.array(0)
        for index, start in enumerate(range(0, n, bs)):
            rec.batch = index
            with rec.span("batch", "train"):
                with rec.span("compiled", "compiled_step"):
                    step = self.fast_steps[min(bs, n - start)]
                    loss_sum, correct_sum = step(perm, self.fast_starts[index], loss_sum, correct_sum)
                mx.async_eval(self.state, loss_sum, correct_sum)
            on_batch()
        self._eval(self.state, loss_sum, correct_sum)
        return loss_sum.item() / n, correct_sum.item() / n

    def validate(self, on_batch: Callable[[], None]) -> tuple[float, float]:
        rec, bs = self.rec, self.cfg.batch_size
        self.model.eval()
        loss_sum, correct_sum = mx.array(0.0), mx.array(0)
        for index, start in enumerate(range(0, self.y_val.size, bs)):
            rec.batch = index
            with rec.span("batch", "val"):
                xb, yb = self.x_val[start : start + bs], self.y_val[start : start + bs]
                loss, correct = _loss_and_correct(self.model, xb, yb)
                loss_sum = loss_sum + loss * yb.size
                correct_sum = correct_sum + correct
                if self.cfg.sync_policy == "batch":
                    self._eval(loss_sum, correct_sum)
            on_batch()
        self._eval(loss_sum, correct_sum)
        return loss_sum.item() / self.y_val.size, correct_sum.item() / self.y_val.size

    def test_batch(self, start: int, stop: int) -> int:
        self.model.eval()
        right = (mx.argmax(self.model(self.x_test[start:stop]), axis=1) == self.y_test[start:stop]).sum()
        with self.rec.sync("item"):
            return int(right.item())

    def predict_one(self, index: int) -> int:
        predicted = mx.argmax(self.model(self.x_test[index : index + 1]), axis=1)
        with self.rec.sync("item"):
            return int(predicted.item())

    def peak_memory_mb(self) -> float | None:
        return mx.get_peak_memory() / 2**20
