"""A run that completes, fails or is interrupted leaves a readable run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnprof.errors import UserError
from cnnprof.profiler.session import RunSession, SessionOptions
from cnnprof.traces.reader import RunData, RunDirError


def _opts(root: Path) -> SessionOptions:
    return SessionOptions(out_root=root, kind="train", label="torch_cpu-synthetic", argv=["cnnprof", "run"])


def _one_epoch(session: RunSession, epoch: int) -> None:
    rec = session.recorder
    rec.epoch = epoch
    with rec.span("epoch", f"epoch {epoch}"), rec.span("train") as train:
        pass
    session.add_epoch_metrics(
        {"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5,
         "epoch_s": train.seconds, "images_per_s": 100.0}
    )


@pytest.mark.parametrize(
    ("error", "status"),
    [(None, "complete"), (RuntimeError("device lost"), "failed"), (KeyboardInterrupt(), "interrupted")],
)
def test_every_ending_leaves_a_readable_directory(tmp_path: Path, error: BaseException | None, status: str):
    session = RunSession(_opts(tmp_path))
    with pytest.raises(type(error)) if error else _nullcontext(), session:
        _one_epoch(session, 1)
        _one_epoch(session, 2)
        if error:
            raise error
    run = RunData(session.run_dir)
    assert run.meta["status"] == status
    assert list(run.metrics["epoch"]) == [1, 2]
    assert set(run.spans["kind"]) == {"epoch", "train"}
    assert (run.spans["start_ns"] >= 0).all()
    assert run.meta["summary"]["epochs_completed"] == 2
    if status == "failed":
        assert "device lost" in run.meta["error"]
        assert any("failed" in note for note in run.notes)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_observer_failure_is_recorded_not_raised(tmp_path: Path):
    class Broken:
        name = "telemetry"

        def start(self, session: RunSession) -> None:
            pass

        def stop(self, session: RunSession) -> dict:
            raise OSError("sampler vanished")

    with RunSession(_opts(tmp_path), [Broken()]) as session:
        _one_epoch(session, 1)
    meta = RunData(session.run_dir).meta
    assert meta["status"] == "complete"
    assert "sampler vanished" in meta["telemetry"]["error"]


def test_runs_in_the_same_second_get_distinct_directories(tmp_path: Path):
    a, b = RunSession(_opts(tmp_path)), RunSession(_opts(tmp_path))
    assert a.run_dir != b.run_dir and a.run_dir.is_dir() and b.run_dir.is_dir()


def test_unwritable_out_is_one_clear_error(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserError, match="--out"):
        RunSession(_opts(blocker / "runs"))


def test_reader_rejects_what_is_not_a_run(tmp_path: Path):
    with pytest.raises(RunDirError, match="no such run directory"):
        RunData(tmp_path / "missing")
    with pytest.raises(RunDirError, match="not a cnnprof run directory"):
        RunData(tmp_path)
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(RunDirError, match="corrupt"):
        RunData(tmp_path)


def test_reader_notes_missing_and_corrupt_tables(tmp_path: Path):
    with RunSession(_opts(tmp_path)) as session:
        _one_epoch(session, 1)
    RunData(session.run_dir)  # the first reader builds the tables
    (session.run_dir / "metrics.parquet").write_bytes(b"not parquet")
    (session.run_dir / "spans.parquet").unlink()
    run = RunData(session.run_dir)
    assert run.metrics.empty and run.spans.empty
    assert any("metrics.parquet is unreadable" in n for n in run.notes)
    assert any("spans.parquet is missing" in n for n in run.notes)
