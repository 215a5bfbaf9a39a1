"""NVML's clock-event (throttle) reason bits, as recorded in telemetry's `clock_event_reasons`.

Kept in `traces` (the run format's vocabulary), not read from pynvml: the sampler writes the
mask, and a report or diagnosis decodes it on any machine, without NVML installed.
"""

from __future__ import annotations

# nvmlClocksEventReason* (nvml.h), in bit order.
GPU_IDLE = 0x001
APPLICATIONS_CLOCKS = 0x002
SW_POWER_CAP = 0x004
HW_SLOWDOWN = 0x008  # thermal or power brake, set by hardware
SYNC_BOOST = 0x010
SW_THERMAL = 0x020
HW_THERMAL = 0x040
HW_POWER_BRAKE = 0x080

CLOCK_EVENT_REASONS: tuple[tuple[int, str], ...] = (
    (GPU_IDLE, "GPU idle"),
    (APPLICATIONS_CLOCKS, "applications clocks setting"),
    (SW_POWER_CAP, "SW power cap"),
    (HW_SLOWDOWN, "HW slowdown"),
    (SYNC_BOOST, "sync boost"),
    (SW_THERMAL, "SW thermal slowdown"),
    (HW_THERMAL, "HW thermal slowdown"),
    (HW_POWER_BRAKE, "HW power brake slowdown"),
    (0x100, "display clock setting"),
    (0x200, "board limit"),
    (0x400, "reliability"),
)

THERMAL_BITS = SW_THERMAL | HW_THERMAL | HW_SLOWDOWN
POWER_BITS = SW_POWER_CAP | HW_POWER_BRAKE
# Reasons that say nothing about throttling: an idle GPU, clocks the administrator set.
BENIGN_BITS = GPU_IDLE | APPLICATIONS_CLOCKS


def decode_clock_event_reasons(mask: float | int) -> list[str]:
    """The names of the bits set in a `clock_event_reasons` value; unknown bits by their hex value."""
    bits = int(mask)
    names = [name for bit, name in CLOCK_EVENT_REASONS if bits & bit]
    known = sum(bit for bit, _ in CLOCK_EVENT_REASONS)
    if rest := bits & ~known:
        names.append(f"unknown (0x{rest:x})")
    return names
