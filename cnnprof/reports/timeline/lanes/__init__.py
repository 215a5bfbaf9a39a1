"""The timeline's lanes, top to bottom. A new lane is one module with a `build(ctx)` (the
LaneBuilder protocol in lane.py) and one line here."""

from __future__ import annotations

from ..lane import LaneBuilder
from . import cores, cpu, cpu_clock, flame, gpu_activity, gpu_clock, memory, phases, power, step_shares, thermal

LANES: tuple[LaneBuilder, ...] = (
    phases.build,
    step_shares.build,
    gpu_clock.build,
    gpu_activity.build,
    power.build,
    cpu.build,
    cpu_clock.build,
    cores.build,
    memory.build,
    thermal.build,
    flame.build,
)
