"""`throttling`: thermal pressure above Nominal, or NVML clock-event reasons thermal / power cap."""

from __future__ import annotations

import numpy as np

from ...traces import nvml_codes
from ..findings import SEVERITY_RANK, Finding
from .context import RunView

# Throttled in at least 5% of telemetry samples: more than a momentary spike.
THROTTLE_SHARE = 0.05
THERMAL_LEVELS = ("Nominal", "Moderate", "Heavy", "Trapping", "Sleeping")


def rule_throttling(ctx: RunView) -> list[Finding]:
    tel = ctx.telemetry
    if tel.empty or "metric" not in tel:
        return []
    evidence: list[str] = []
    severity = None
    fixes: list[str] = []

    def raise_to(level: str) -> None:
        nonlocal severity
        if severity is None or SEVERITY_RANK[level] < SEVERITY_RANK[severity]:
            severity = level

    thermal = tel[tel["metric"] == "thermal_pressure_level"]["value"].to_numpy(float)
    if len(thermal):
        hot = thermal > 0
        share = float(hot.mean())
        if share >= THROTTLE_SHARE:
            top = int(thermal.max())
            name = THERMAL_LEVELS[min(top, len(THERMAL_LEVELS) - 1)]
            evidence.append(f"thermal pressure above Nominal in {share:.0%} of {len(thermal):,} readings (max {name})")
            raise_to("high" if top >= 3 else "medium" if top == 2 else "low")
            fixes.append(
                "Cool the machine (a stand, not a lap or a closed case), and compare runs only at the "
                "same thermal state."
            )

    reasons = tel[tel["metric"] == "clock_event_reasons"]["value"].to_numpy(float)
    if len(reasons):
        bits = reasons.astype(np.int64)
        t_share = float(((bits & nvml_codes.THERMAL_BITS) != 0).mean())
        p_share = float(((bits & nvml_codes.POWER_BITS) != 0).mean())
        if t_share >= THROTTLE_SHARE:
            evidence.append(
                f"NVML clock-event reasons thermal / hardware slowdown in {t_share:.0%} of {len(bits):,} readings"
            )
            raise_to("high" if t_share >= 0.5 else "medium")
            fixes.append("Check the GPU's cooling and temperature; thermal slowdown lowers the clocks.")
        if p_share >= THROTTLE_SHARE:
            evidence.append(
                f"NVML clock-event reasons power cap / power brake in {p_share:.0%} of {len(bits):,} readings"
            )
            raise_to("low")
            fixes.append(
                "The GPU runs at its power limit: expected under full load; raise the limit only if the cooling allows."
            )
    if severity is None:
        return []
    clocks = tel[tel["metric"] == "sm_clock_mhz"]["value"].to_numpy(float)
    if len(clocks):
        evidence.append(f"SM clock median {np.median(clocks):.0f} MHz, min {clocks.min():.0f}, max {clocks.max():.0f}")
    kinds = " and ".join(k for k in ("thermal", "power") if any(k in e for e in evidence))
    return [
        Finding(
            "throttling",
            severity,
            f"The hardware throttled during the run ({kinds}): timings are slower than the machine's best",
            evidence,
            " ".join(fixes[:2]),
        )
    ]
