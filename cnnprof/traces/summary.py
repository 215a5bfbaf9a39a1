"""run.json's `summary`: the headline figures of a run (the closing table, the report's cards),
from its per-epoch metrics and inference timings. Plain Python: the run's end writes it without
pandas, and the first reader writes it again once the epochs have their energy (traces/tables.py)."""

from __future__ import annotations

import statistics
from typing import Any


def summarize(metric_rows: list[dict[str, Any]], inference_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures of a run (the closing table and the report's cards)."""
    summary: dict[str, Any] = {"epochs_completed": len(metric_rows)}
    if metric_rows:
        epoch_s = [r["epoch_s"] for r in metric_rows]
        last = metric_rows[-1]
        summary.update(
            epoch_s_min=min(epoch_s),
            epoch_s_median=statistics.median(epoch_s),
            epoch_s_max=max(epoch_s),
            images_per_s_median=statistics.median(r["images_per_s"] for r in metric_rows),
            final_train_loss=last.get("train_loss"),
            final_train_acc=last.get("train_acc"),
            final_val_loss=last.get("val_loss"),
            final_val_acc=last.get("val_acc"),
        )
        energy_keys = sorted({k for r in metric_rows for k in r if k.startswith("energy_j.")})
        for key in energy_keys:
            summary[f"train_{key}"] = sum(r.get(key) or 0.0 for r in metric_rows)
    for kind, prefix in (("batched", "test"), ("single", "single")):
        rows = [r for r in inference_rows if r["kind"] == kind]
        if not rows:
            continue
        seconds = sum(r["seconds"] for r in rows)
        images = sum(r["n_images"] for r in rows)
        summary[f"{prefix}_images"] = images
        summary[f"{prefix}_accuracy"] = sum(r["correct"] for r in rows) / images
        if kind == "batched":
            summary["test_ms"] = seconds * 1e3
        else:
            summary["single_ms_per_image"] = seconds * 1e3 / images
    return summary
