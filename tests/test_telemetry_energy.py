"""traces/energy.py on constructed telemetry with hand-computed answers."""

from __future__ import annotations

import pandas as pd
import pytest

from cnnprof.traces.energy import energy_by_source, power_series, series_energy

S = 1_000_000_000  # ns per second


def table(rows: list[tuple[float, str, str, float]]) -> pd.DataFrame:
    """Rows (t in seconds, source, metric, value) as a telemetry table."""
    return pd.DataFrame(
        {
            "t_ns": [int(t * S) for t, *_ in rows],
            "source": [r[1] for r in rows],
            "metric": [r[2] for r in rows],
            "value": [float(r[3]) for r in rows],
        }
    )


# powermetrics: 1 s windows ending at 1, 2, 3 s with 10, 20, 40 W (and a CPU series beside it).
POWERMETRICS = [
    row
    for t, gpu in ((1, 10), (2, 20), (3, 40))
    for row in (
        (t, "powermetrics", "window_ms", 1000),
        (t, "powermetrics", "gpu_power_w", gpu),
        (t, "powermetrics", "gpu_freq_mhz", 1300),
        (t, "powermetrics", "cpu_power_w", 2),
    )
]
# nvml: instant samples at 0, 1, 2 s: 100, 200, 100 W; the 1 s average beside them.
NVML = [(t, "nvml", "power_w", w) for t, w in ((0, 100), (1, 200), (2, 100))] + [
    (t, "nvml", "power_avg_w", 150) for t in (0, 1, 2)
]


def test_window_averages_integrate_as_steps_clipped_to_the_range() -> None:
    frame = table(POWERMETRICS)
    assert energy_by_source(frame, 0, 3 * S)["powermetrics.gpu_power_w"] == pytest.approx(10 + 20 + 40)
    # [0.5, 1.5] s: half of the first window (0.5 s x 10 W) + half of the second (0.5 s x 20 W).
    assert energy_by_source(frame, S // 2, 3 * S // 2)["powermetrics.gpu_power_w"] == pytest.approx(15.0)
    # [2.25, 2.75] s lies inside the third window, stamped at its end (3 s): 0.5 s x 40 W.
    assert energy_by_source(frame, 9 * S // 4, 11 * S // 4)["powermetrics.gpu_power_w"] == pytest.approx(20.0)
    assert energy_by_source(frame, 0, 3 * S)["powermetrics.cpu_power_w"] == pytest.approx(6.0)
    assert "powermetrics.gpu_freq_mhz" not in energy_by_source(frame, 0, 3 * S)


def test_instant_samples_integrate_as_trapezoids() -> None:
    frame = table(NVML)
    energy = energy_by_source(frame, 0, 2 * S)
    assert energy == {"nvml.power_w": pytest.approx(300.0)}  # power_avg_w is not counted twice
    # [0.5, 1.5] s: the ends interpolated to 150 W: (150 + 200) / 2 x 0.5 + (200 + 150) / 2 x 0.5.
    assert energy_by_source(frame, S // 2, 3 * S // 2)["nvml.power_w"] == pytest.approx(175.0)
    # No extrapolation before the first sample: [-1, 0.5] s counts [0, 0.5] only.
    assert energy_by_source(frame, -S, S // 2)["nvml.power_w"] == pytest.approx(62.5)
    assert energy_by_source(frame, 3 * S, 4 * S)["nvml.power_w"] == 0.0


def test_rapl_windows_and_a_missing_window_row_take_the_gap() -> None:
    frame = table(
        [
            (1.0, "rapl", "package-0.power_w", 30),
            (1.0, "rapl", "window_ms", 1000),
            (1.5, "rapl", "package-0.power_w", 40),
            (1.5, "rapl", "window_ms", 500),
            (2.5, "rapl", "package-0.power_w", 50),  # no window_ms row: the 1 s since the last row
        ]
    )
    assert energy_by_source(frame, 0, 3 * S) == {"rapl.package-0.power_w": pytest.approx(30 + 20 + 50)}


def test_several_sources_and_gpus_keyed_by_source_and_metric() -> None:
    frame = table(POWERMETRICS + NVML + [(t, "nvml", "gpu1.power_w", 50) for t in (0, 2)])
    energy = energy_by_source(frame, 0, 2 * S)
    assert set(energy) == {
        "powermetrics.gpu_power_w",
        "powermetrics.cpu_power_w",
        "nvml.power_w",
        "nvml.gpu1.power_w",
    }
    assert energy["nvml.gpu1.power_w"] == pytest.approx(100.0)
    assert energy["powermetrics.gpu_power_w"] == pytest.approx(30.0)


def test_two_readings_at_one_instant_are_one_point() -> None:
    frame = table(NVML + [(1, "nvml", "power_w", 100)])  # a buffered sample and a poll at 1 s
    series = power_series(frame)["nvml.power_w"]
    assert series.t_ns.tolist() == [0, S, 2 * S] and series.watts.tolist() == [100, 150, 100]
    assert series_energy(series, 0, 2 * S) == pytest.approx(250.0)


def test_empty_or_reversed_ranges_give_nothing() -> None:
    assert energy_by_source(table([]).astype({"t_ns": "int64"}), 0, S) == {}
    assert energy_by_source(table(NVML), 2 * S, S)["nvml.power_w"] == 0.0
