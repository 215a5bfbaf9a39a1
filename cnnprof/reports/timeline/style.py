"""The timeline's colours: one palette, one colour per span kind, per sync call, per code category."""

from __future__ import annotations

PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
    "#1f77b4",
    "#8c564b",
)
KIND_COLORS = {
    "epoch": "#9fb6d1",
    "setup": "#bab0ac",
    "phase": "#9d755d",
    "train": "#4c78a8",
    "validation": "#72b7b2",
    "test": "#54a24b",
    "single_inference": "#b279a2",
    "data": "#eeca3b",
    "forward": "#9467bd",
    "backward": "#f58518",
    "optimizer": "#8c564b",
    "step": "#bcbd22",
    "sync": "#e45756",
    "batch:train": "#4c78a8",
    "batch:val": "#72b7b2",
    "batch:test": "#54a24b",
    "single": "#e377c2",
}
SYNC_COLORS = ("#e45756", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
CATEGORY_COLORS = {
    "your code": "#4c78a8",
    "torch": "#f58518",
    "mlx": "#54a24b",
    "numpy": "#72b7b2",
    "built-in": "#e45756",
    "other libraries": "#b279a2",
    "python stdlib": "#9d9d9d",
    "cnnprof": "#c7b299",
    "process": "#3b3b3b",  # the root of each process in the all-process call tree
}
