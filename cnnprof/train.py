"""`cnnprof run`: checks the request and loads the data (prepare_run), then trains one backend
inside a RunSession that the caller owns (execute_run), so the caller always knows the run
directory, however the training ends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError
from .models.backends import BackendStatus, resolve_backend
from .models.loops.common import LoopConfig, LoopEvents
from .profiler.session import RunSession, SessionOptions
from .traces.record import Backend, Dataset, Model

if TYPE_CHECKING:
    from .models.data import DatasetSplits


@dataclass
class RunRequest:
    backend: str
    dataset: str
    loop_config: LoopConfig
    out_root: Path
    argv: list[str]
    data_dir: Path | None = None
    download: bool = True
    train_images: int | None = None
    test_images: int | None = None


@dataclass
class PreparedRun:
    backend: BackendStatus
    data: DatasetSplits
    loop_config: LoopConfig
    session_options: SessionOptions


def prepare_run(request: RunRequest) -> PreparedRun:
    """Checks everything a user can get wrong, before any run directory exists, and loads the data."""
    from .models.data import load_dataset

    backend = resolve_backend(request.backend)
    cfg = request.loop_config
    cfg.validate(backend.framework)
    if request.train_images is not None and request.train_images < cfg.batch_size:
        raise UserError(
            f"--train-images {request.train_images} is less than one batch ({cfg.batch_size}); "
            "raise it or lower --batch-size"
        )
    data = load_dataset(
        request.dataset,
        request.data_dir,
        download=request.download,
        seed=cfg.seed,
        train_images=request.train_images,
        test_images=request.test_images,
    )
    config = {
        "backend": backend.name,
        "dataset": request.dataset,
        "train_images": request.train_images,
        "test_images": request.test_images,
    }
    opts = SessionOptions(
        out_root=request.out_root,
        kind="train",
        label=f"{backend.name}-{request.dataset}",
        argv=request.argv,
        config={**config, **cfg.to_dict()},
    )
    return PreparedRun(backend, data, cfg, opts)


def execute_run(prepared: PreparedRun, session: RunSession, events: LoopEvents) -> None:
    """Trains inside an entered session: epochs, validation, test set, single-image inference."""
    from .models.loops import make_trainer
    from .models.loops.common import run_training

    backend, data = prepared.backend, prepared.data
    record = session.record
    record.backend = Backend(
        name=backend.name,
        framework=backend.framework,
        framework_version=backend.framework_version,
        device=backend.device,
        device_name=backend.device_name,
    )
    record.dataset = Dataset(
        name=data.name,
        train=len(data.y_train),
        validation=len(data.y_val),
        test=len(data.y_test),
        shape=[data.channels, data.height, data.width],
        classes=data.num_classes,
    )
    trainer = make_trainer(backend.framework, backend.device, data, prepared.loop_config, session.recorder)
    record.model = Model(name="seed CNN", parameters=trainer.parameters)
    session.write_meta()
    run_training(trainer, data, prepared.loop_config, session, events)
