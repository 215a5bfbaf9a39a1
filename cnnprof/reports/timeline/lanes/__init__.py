"""The timeline's lanes, top to bottom. A new lane is one module here with a `build(ctx)` (the
LaneBuilder protocol in lane.py) and its name in LANE_MODULES."""

from __future__ import annotations

from importlib import import_module

from ..lane import LaneBuilder

LANE_MODULES = (
    "phases",
    "step_shares",
    "gpu_clock",
    "gpu_activity",
    "power",
    "cpu",
    "cpu_clock",
    "cores",
    "preemptions",
    "memory",
    "thermal",
    "flame",
    "processes",
)
LANES: tuple[LaneBuilder, ...] = tuple(import_module(f"{__name__}.{name}").build for name in LANE_MODULES)
