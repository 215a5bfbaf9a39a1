"""Training loops, one module per framework, driven by `common.run_training`.

The loops report phases to the session's recorder; they keep no clocks and print nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..data import DatasetSplits
    from ..recorder import Recorder as SpanRecorder
    from .common import LoopConfig, Trainer


def make_trainer(
    framework: str, device: str, data: DatasetSplits, cfg: LoopConfig, rec: SpanRecorder
) -> Trainer:
    """The framework's trainer; its module (and the framework) is imported only now."""
    if framework == "torch":
        from .torch_loop import TorchTrainer

        return TorchTrainer(data, cfg, device, rec)
    from .mlx_loop import MlxTrainer

    return MlxTrainer(data, cfg, device, rec)
