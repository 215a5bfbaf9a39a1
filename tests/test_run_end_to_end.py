"""`cnnprof run` for real, kept tiny: the CPU is slow and MLX's CPU backend slower still."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import only_run_dir

from cnnprof.cli import main
from cnnprof.traces.reader import RunData

TINY = ["--train-images", "512", "--test-images", "256", "--batch-size", "128", "--single-inference", "8",
        "--telemetry", "none", "--profiler", "none", "--no-report"]


def _run(out: Path, *args: str) -> RunData:
    assert main(["run", *args, *TINY, "--out", str(out)]) == 0
    return RunData(only_run_dir(out))


@pytest.mark.slow
def test_torch_cpu_seed_and_tuned_train_the_same_model_on_the_same_data(tmp_path: Path):
    seed = _run(tmp_path / "seed", "--backend", "torch_cpu", "--loop", "seed", "--epochs", "2")
    tuned = _run(tmp_path / "tuned", "--backend", "torch_cpu", "--loop", "tuned", "--epochs", "2")
    for run in (seed, tuned):
        assert run.meta["status"] == "complete"
        assert run.meta["model"]["parameters"] == seed.meta["model"]["parameters"] > 600_000
        assert list(run.metrics["epoch"]) == [1, 2]
        inference = run.inference
        assert (inference["kind"] == "batched").sum() == 2  # 256 test images / 128
        assert (inference["kind"] == "single").sum() == 8
        assert run.meta["summary"]["test_images"] == 256
    # Same initial weights, same batches in the same order: the losses agree; only the sync
    # policy and input path differ (fused Adam rounds differently, hence the tolerance).
    assert seed.metrics["train_loss"].tolist() == pytest.approx(tuned.metrics["train_loss"].tolist(), rel=1e-3)

    kinds = seed.spans.groupby("kind").size()
    batches_per_epoch = 512 // 128
    assert kinds["epoch"] == 2
    for phase in ("forward", "backward", "optimizer"):
        assert kinds[phase] == 2 * batches_per_epoch
    # seed: per batch a collate and a metrics sync; tuned: slices and one sync per epoch
    assert (seed.spans.query("kind == 'data'")["name"] == "collate").all()
    assert (tuned.spans.query("kind == 'data'")["name"] == "slice").all()
    # both: one step per optimizer step, found by the step hooks; on the CPU no syncs at all
    for run in (seed, tuned):
        assert (run.spans["kind"] == "step").sum() == 2 * batches_per_epoch
        assert (run.spans["kind"] == "sync").sum() == 0
    # every batch span lies inside its epoch span
    epochs = seed.spans.query("kind == 'epoch'").set_index("epoch")
    for _, batch in seed.spans.query("kind == 'batch' and name == 'train'").iterrows():
        epoch = epochs.loc[batch["epoch"]]
        assert epoch["start_ns"] <= batch["start_ns"] <= batch["end_ns"] <= epoch["end_ns"]


@pytest.mark.slow
def test_mlx_cpu_run_writes_a_complete_directory(tmp_path: Path):
    run = _run(tmp_path, "--backend", "mlx_cpu", "--epochs", "1", "--train-images", "256")
    assert run.meta["status"] == "complete"
    assert run.meta["backend"]["framework"] == "mlx"
    assert len(run.metrics) == 1 and 0.0 <= run.metrics["val_acc"][0] <= 1.0
    assert {"step", "data", "sync", "compiled"} <= set(run.spans["kind"])
    steps = run.spans[run.spans["kind"] == "step"]
    batches = run.spans.query("kind == 'batch' and name == 'train'")
    assert len(steps) == len(batches) > 0  # the compiled step's calls: one step per training batch
    assert run.meta["summary"]["single_ms_per_image"] > 0
