"""`--loop fast`: the same training as tuned (same batches, same order, same losses), on the CPU.

The CUDA-graph path (side-stream warm-up, capture, replay) cannot run here; what it shares with the
CPU path is exercised: the static buffers each batch is copied into, one step per batch size, the
totals accumulated inside the step, and the state restored after warm-up iterations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import only_run_dir

from cnnprof.cli import main
from cnnprof.errors import UserError
from cnnprof.models.data import DatasetSplits
from cnnprof.models.loops import make_trainer
from cnnprof.models.loops.common import LOOPS, LoopConfig, epoch_order
from cnnprof.profiler.spans import SpanRecorder
from cnnprof.traces.reader import RunData

N_TRAIN, BATCH = 80, 32  # batches of 32, 32 and 16: the short last batch has its own step


def tiny_splits(seed: int = 0) -> DatasetSplits:
    """16x16 grey images (the smallest size the CNN's three poolings leave a 2x2 map of), labels
    that depend on the image so the loss moves."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n).astype(np.int64)
        x = rng.standard_normal((n, 1, 16, 16)).astype(np.float32)
        x[:, 0, :, :] += (y[:, None, None] - 4.5) / 3
        return x, y

    (xtr, ytr), (xva, yva), (xte, yte) = split(N_TRAIN), split(20), split(20)
    return DatasetSplits("tiny", xtr, ytr, xva, yva, xte, yte, 10, (0.5,), (0.25,))


def train(framework: str, loop: str, epochs: int = 2) -> tuple[list[tuple[float, ...]], Any]:
    data = tiny_splits()
    cfg = LoopConfig(epochs=epochs, batch_size=BATCH, lr=1e-3, loop=loop)
    rec = SpanRecorder()
    trainer = make_trainer(framework, "cpu", data, cfg, rec)
    rows = []
    for epoch in range(1, epochs + 1):
        order = epoch_order(cfg.seed, epoch, N_TRAIN)
        rows.append((*trainer.train_epoch(order, lambda: None), *trainer.validate(lambda: None)))
    return rows, trainer


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "mlx"])
def test_fast_trains_exactly_as_tuned(framework: str) -> None:
    pytest.importorskip("torch" if framework == "torch" else "mlx.core")
    tuned, _ = train(framework, "tuned")
    fast, trainer = train(framework, "fast")
    # per epoch: train loss, train accuracy, validation loss, validation accuracy
    np.testing.assert_allclose(np.array(fast), np.array(tuned), rtol=1e-5, atol=1e-6)
    assert tuned[0] != tuned[1]  # training moved the loss: the comparison is not of constants
    assert len(trainer.notes) == 1 and "fast on cpu" in trainer.notes[0]


def test_torch_fast_copies_each_batch_into_its_sizes_buffers() -> None:
    torch = pytest.importorskip("torch")
    _, trainer = train("torch", "fast", epochs=1)
    steps = trainer.fast
    assert sorted(steps.steps) == [16, 32] and not steps.graphed
    # the buffers hold the epoch's last batch of each size, in the epoch's order
    order = epoch_order(0, 1, N_TRAIN)
    assert torch.equal(steps[32].y, trainer.y_train[order[32:64]])
    assert torch.equal(steps[16].x, trainer.x_train[order[64:]])
    # each training batch: a slice (the copy), then the eager step, which the step hooks observe
    # as in tuned; no graph, so no replay span
    kinds = [row[:2] for row in trainer.rec.rows]
    assert kinds.count(("batch", "train")) == kinds.count(("data", "slice")) - 1 == 3  # + 1 validation batch
    assert ("compiled", "graph_replay") not in kinds


def test_torch_fresh_state_undoes_warm_up_steps() -> None:
    """What the CUDA path does around capture: train a few steps, restore, then train for real."""
    torch = pytest.importorskip("torch")
    from cnnprof.models.loops.torch_graph import FreshState

    reference, _ = train("torch", "fast", epochs=1)
    data = tiny_splits()
    cfg = LoopConfig(epochs=1, batch_size=BATCH, lr=1e-3, loop="fast")
    trainer = make_trainer("torch", "cpu", data, cfg, SpanRecorder())
    before = [p.detach().clone() for p in trainer.model.parameters()]
    fresh = FreshState(trainer.model, trainer.optimizer, trainer.device)
    for static in trainer.fast.steps.values():  # warm-up: eager steps on the buffers' first batch
        for _ in range(3):
            static.run()
    assert not all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    fresh.restore()
    trainer.totals.zero()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    assert all(float(state["step"]) == 0 for state in trainer.optimizer.state.values())
    order = epoch_order(0, 1, N_TRAIN)
    got = (*trainer.train_epoch(order, lambda: None), *trainer.validate(lambda: None))
    np.testing.assert_allclose(got, reference[0], rtol=1e-6)
    with pytest.raises(ValueError):  # only a fresh optimizer can be restored to
        FreshState(trainer.model, trainer.optimizer, trainer.device)


def test_torch_graph_path_with_a_stand_in_graph_trains_as_tuned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA path's orchestration on the CPU: capture at the first epoch (warm-up steps that
    really train, then the fresh state restored), then replays. A stand-in replaces what
    only CUDA has: the side stream (warm-up runs eagerly) and the graph (a replay re-runs the
    captured step on the same static buffers, as a CUDA graph re-runs its kernels on the same
    memory)."""
    torch = pytest.importorskip("torch")
    from cnnprof.models.loops.torch_graph import StaticStep

    class StandInGraph:
        def __init__(self, static: StaticStep) -> None:
            self.static = static

        def replay(self) -> None:
            self.static.step(self.static.x, self.static.y)

    def warm_up(self: StaticStep, iters: int) -> None:
        for _ in range(iters):
            self.step(self.x, self.y)

    def capture(self: StaticStep) -> None:
        self.graph = StandInGraph(self)  # type: ignore[assignment]

    monkeypatch.setattr(StaticStep, "warm_up", warm_up)
    monkeypatch.setattr(StaticStep, "capture", capture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    tuned, _ = train("torch", "tuned")

    cfg = LoopConfig(epochs=2, batch_size=BATCH, lr=1e-3, loop="fast")
    trainer = make_trainer("torch", "cpu", tiny_splits(), cfg, SpanRecorder())
    trainer._set_up_fast(graphs=True)  # what a CUDA device sets up, on CPU tensors
    rows = []
    for epoch in (1, 2):
        order = epoch_order(cfg.seed, epoch, N_TRAIN)
        rows.append((*trainer.train_epoch(order, lambda: None), *trainer.validate(lambda: None)))
    np.testing.assert_allclose(np.array(rows), np.array(tuned), rtol=1e-5, atol=1e-6)
    kinds = [row[:2] for row in trainer.rec.rows]
    assert kinds.count(("phase", "graph_capture")) == 1  # once, at the first epoch
    assert kinds.count(("compiled", "graph_replay")) == kinds.count(("batch", "train")) == 2 * 3
    # each replay inside its batch span, right after the batch's copy
    assert all(kinds[i - 1] == ("data", "slice") for i, k in enumerate(kinds) if k == ("compiled", "graph_replay"))


def test_fast_refuses_a_sync_override() -> None:
    with pytest.raises(UserError, match="--sync does not apply to --loop fast"):
        LoopConfig(loop="fast", sync="batch").validate("torch")
    assert LoopConfig(loop="fast").sync_policy == "epoch"


def test_cli_and_bench_offer_every_loop() -> None:
    from cnnprof.bench import parse_list
    from cnnprof.cli import build_parser
    from cnnprof.cli_options import LOOP_CHOICES

    assert LOOP_CHOICES == LOOPS
    assert build_parser().parse_args(["run", "--loop", "fast"]).loop == "fast"
    assert parse_list("seed,tuned,fast", LOOP_CHOICES, "loop") == ["seed", "tuned", "fast"]


@pytest.mark.slow
def test_a_torch_cpu_fast_run_says_how_it_ran(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    args = ["run", "--backend", "torch_cpu", "--loop", "fast", "--epochs", "1", "--train-images", "320",
            "--test-images", "64", "--batch-size", "128", "--single-inference", "2", "--telemetry", "none",
            "--profiler", "none", "--no-report", "--out", str(tmp_path)]
    assert main(args) == 0
    run = RunData(only_run_dir(tmp_path))
    assert run.meta["status"] == "complete" and run.meta["config"]["loop"] == "fast"
    assert "no CUDA graphs here" in run.meta["config"]["loop_notes"][0]
    # the step hooks see the eager step's optimizer: one derived step per batch, as for tuned
    steps = run.spans.query("kind == 'step'")
    assert len(steps) == 3  # 288 training images (320 less the 10 % validation): 128, 128, 32


def test_mlx_fast_turns_cuda_graphs_off_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA-only setting of MLX's fast loop (the trainer calls this on CUDA only: not run here)."""
    mlx_loop = pytest.importorskip("cnnprof.models.loops.mlx_loop")
    for held, late in ((0, False), (4096, True)):  # bytes MLX holds before the loop
        monkeypatch.delenv("MLX_USE_CUDA_GRAPHS", raising=False)
        monkeypatch.setattr(mlx_loop.mx, "get_active_memory", lambda held=held: held)
        note = mlx_loop._cuda_graphs_off()
        assert "graphs off" in note and ("too late" in note) == late
        assert os.environ["MLX_USE_CUDA_GRAPHS"] == "0"
    monkeypatch.setenv("MLX_USE_CUDA_GRAPHS", "1")
    assert "MLX_USE_CUDA_GRAPHS=1 as set" in mlx_loop._cuda_graphs_off()
    assert os.environ["MLX_USE_CUDA_GRAPHS"] == "1"
