"""What every framework's loop shares: the configuration, the epoch order, and the driver that
runs epochs, validation, the batched test set and single-image inference around a `Trainer`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from ...errors import UserError
from ..data import DatasetSplits

LOOPS = ("seed", "tuned", "fast")
SYNC_POLICIES = ("batch", "epoch", "lazy")


@dataclass(frozen=True)
class LoopConfig:
    epochs: int = 10
    batch_size: int = 512
    lr: float = 1e-4
    seed: int = 0
    loop: str = "seed"  # seed: the study's loop; tuned: each framework's best practice; fast: tuned
    # plus the whole step compiled / graphed, for a launch-bound step
    sync: str | None = None  # overrides the loop's sync policy alone
    single_inference: int = 10000

    @property
    def sync_policy(self) -> str:
        """seed reads loss/accuracy every batch (the study); tuned and fast once per epoch."""
        return self.sync or ("batch" if self.loop == "seed" else "epoch")

    def validate(self, framework: str) -> None:
        if self.loop not in LOOPS:
            raise UserError(f"unknown --loop {self.loop!r}; choose seed, tuned or fast")
        if self.sync is not None and self.loop == "fast":
            raise UserError("--sync does not apply to --loop fast (its totals are read once per epoch); drop --sync")
        if self.sync is not None and self.sync not in SYNC_POLICIES:
            raise UserError(f"unknown --sync {self.sync!r}; choose batch, epoch or lazy")
        if self.sync == "lazy" and framework != "mlx":
            raise UserError("--sync lazy applies to MLX only (PyTorch runs eagerly); use batch or epoch")
        for name, value in (("epochs", self.epochs), ("batch-size", self.batch_size)):
            if value < 1:
                raise UserError(f"--{name} must be at least 1 (got {value})")
        if self.single_inference < 0:
            raise UserError(f"--single-inference must be 0 or more (got {self.single_inference})")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive (got {self.lr})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sync_policy": self.sync_policy}


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The training order of one epoch: the same for every framework and loop, so runs compare."""
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def n_batches(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


class Trainer(Protocol):
    """One framework's side of the loop. Every method that returns numbers has synchronised
    with the device first, so the span around it timed finished work."""

    notes: list[str]  # how the loop ran on this device, where that differs from its name (run.json)

    def train_epoch(self, order: np.ndarray, on_batch: Callable[[], None]) -> tuple[float, float]:
        """Trains one epoch in `order`; returns (mean loss per image, accuracy)."""
        ...

    def validate(self, on_batch: Callable[[], None]) -> tuple[float, float]: ...

    def test_batch(self, start: int, stop: int) -> int:
        """Classifies test images [start, stop) in one batch; returns how many were right."""
        ...

    def predict_one(self, index: int) -> int:
        """Classifies test image `index` alone; returns the predicted class."""
        ...

    def peak_memory_mb(self) -> float | None: ...


class LoopEvents(Protocol):
    """Progress for whoever watches (the CLI's progress bars); never timing."""

    def phase_started(self, phase: str, total: int, epoch: int | None) -> None: ...

    def advanced(self) -> None: ...

    def epoch_finished(self, row: dict[str, Any]) -> None: ...


class Record(Protocol):
    """The part of the run record (traces.record.RunRecord) the loops write: the run's config."""

    config: dict[str, Any]


class Session(Protocol):
    """The parts of profiler.session.RunSession the loops use (models never import profiler)."""

    recorder: Any
    record: Record

    def add_epoch_metrics(self, row: dict[str, Any]) -> None: ...

    def add_inference(self, kind: str, index: int, n_images: int, seconds: float, correct: int) -> None: ...


def run_training(
    trainer: Trainer,
    data: DatasetSplits,
    cfg: LoopConfig,
    session: Session,
    events: LoopEvents,
) -> None:
    """Epochs of train + validation, then the test set batched, then single-image inference."""
    rec = session.recorder
    session.record.config["loop_notes"] = list(trainer.notes)
    n_train, bs = len(data.y_train), cfg.batch_size
    for epoch in range(1, cfg.epochs + 1):
        rec.epoch = epoch
        order = epoch_order(cfg.seed, epoch, n_train)
        with rec.span("epoch", f"epoch {epoch}"):
            events.phase_started("train", n_batches(n_train, bs), epoch)
            with rec.span("train") as train_span:
                train_loss, train_acc = trainer.train_epoch(order, events.advanced)
            rec.batch = None
            events.phase_started("validation", n_batches(len(data.y_val), bs), epoch)
            with rec.span("validation"):
                val_loss, val_acc = trainer.validate(events.advanced)
            rec.batch = None
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "epoch_s": train_span.seconds,
            "images_per_s": n_train / train_span.seconds,
            "peak_memory_mb": trainer.peak_memory_mb(),
        }
        session.add_epoch_metrics(row)  # streamed: a killed run keeps its finished epochs
        events.epoch_finished(row)
    rec.epoch = None

    n_test = len(data.y_test)
    events.phase_started("test", n_batches(n_test, bs), None)
    with rec.span("test"):
        for index, start in enumerate(range(0, n_test, bs)):
            rec.batch = index
            stop = min(start + bs, n_test)
            with rec.span("batch", "test") as span:
                correct = trainer.test_batch(start, stop)
            session.add_inference("batched", index, stop - start, span.seconds, correct)
            events.advanced()
    rec.batch = None

    n_single = min(cfg.single_inference, n_test)
    if n_single:
        events.phase_started("single", n_single, None)
        with rec.span("single_inference"):
            for index in range(n_single):
                with rec.span("single") as span:
                    predicted = trainer.predict_one(index)
                session.add_inference("single", index, 1, span.seconds, int(predicted == data.y_test[index]))
                events.advanced()
