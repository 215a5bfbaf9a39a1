"""The study's figures for a set of runs as a markdown table (bench.md, docs/BENCHMARKS.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..traces.reader import RunData


def _cell(value: Any, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale if scale != 1.0 else value:{spec}}"


def energy_per_epoch(run: RunData) -> dict[str, float]:
    """Median training energy of an epoch (J) per power source: the median, like the epoch time,
    so a first epoch that pays compilation (MLX's CUDA kernels: 100 s once) does not dominate."""
    metrics = run.metrics
    prefix = "energy_j."
    return {
        column.removeprefix(prefix): float(metrics[column].median())
        for column in metrics.columns
        if column.startswith(prefix) and metrics[column].notna().any()
    }


def study_table(runs: Sequence[RunData]) -> str:
    """One row per run: epoch time spread, throughput, test set, single image, accuracy, energy."""
    sources = sorted({source for run in runs for source in energy_per_epoch(run)})
    header = [
        "run",
        "device",
        "epochs",
        "epoch s min / median / max",
        "images/s",
        "test set ms",
        "single image ms",
        "final val acc",
        "test acc",
    ]
    header += [f"J/epoch (median) {s}" for s in sources] + [f"mJ/train image {s}" for s in sources]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        s = run.record.summary
        energy = energy_per_epoch(run)
        train_images = run.record.dataset.train if run.record.dataset else 0
        row = [
            run.label,
            run.record.backend.device_name,
            _cell(s.get("epochs_completed"), "d"),
            " / ".join(_cell(s.get(k), ".2f") for k in ("epoch_s_min", "epoch_s_median", "epoch_s_max")),
            _cell(s.get("images_per_s_median"), ",.0f"),
            _cell(s.get("test_ms"), ",.1f"),
            _cell(s.get("single_ms_per_image"), ".3f"),
            _cell(s.get("final_val_acc"), ".1f", 100) + " %",
            _cell(s.get("test_accuracy"), ".1f", 100) + " %",
        ]
        row += [_cell(energy.get(src), ",.1f") for src in sources]
        row += [
            _cell(energy[src] * 1e3 / train_images if src in energy and train_images else None, ".3f")
            for src in sources
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
