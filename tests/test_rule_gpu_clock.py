"""Rule gpu-clock-sources on constructed runs where macmon and powermetrics both sampled."""

from __future__ import annotations

from pathlib import Path

from diagnosis_runs import MS, Run, by_id

from cnnprof.reports.diagnosis import diagnose


def clocks(mhz: list[float], offset_ms: int = 0) -> list[tuple[int, float]]:
    return [((i * 100 + offset_ms) * MS, v) for i, v in enumerate(mhz)]


def test_powermetrics_flat_while_macmon_moves_is_named(tmp_path: Path) -> None:
    """The M5 Max report: powermetrics stuck at 1620 MHz, IOReport 540-1620 MHz."""
    moving = [540.0 + (1620 - 540) * ((i % 10) / 9) for i in range(50)]
    run = Run(tmp_path, "mlx_gpu").epochs(1, 5.0)
    run.tel("gpu_freq_mhz", clocks(moving), "macmon").tel("gpu_freq_mhz", clocks([1620.0] * 50, 30), "powermetrics")
    (f,) = by_id(diagnose(run.load()).findings, "gpu-clock-sources")
    assert f.severity == "info"
    assert f.claim.startswith("powermetrics reports a flat GPU clock while macmon sees it change")
    assert "macmon: median 1080 MHz, range 540-1620" in f.evidence
    assert "powermetrics: median 1620 MHz, range 1620-1620" in f.evidence
    assert f.evidence[0] == "50 pairs of readings at most 150 ms apart"


def test_a_steady_gap_between_the_sources_is_named(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_gpu").epochs(1, 3.0)
    run.tel("gpu_freq_mhz", clocks([1000.0 + i for i in range(30)]), "macmon")
    run.tel("gpu_freq_mhz", clocks([700.0 + i for i in range(30)]), "powermetrics")
    (f,) = by_id(diagnose(run.load()).findings, "gpu-clock-sources")
    assert "disagree on the GPU clock (median difference 30%)" in f.claim


def test_agreeing_sources_or_one_source_say_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_gpu").epochs(1, 3.0)
    moving = [400.0 + 40 * (i % 7) for i in range(30)]
    run.tel("gpu_freq_mhz", clocks(moving), "macmon").tel(
        "gpu_freq_mhz", clocks([v * 1.05 for v in moving]), "powermetrics"
    )
    assert by_id(diagnose(run.load()).findings, "gpu-clock-sources") == []
    (tmp_path / "alone").mkdir()
    alone = Run(tmp_path / "alone", "mlx_gpu").epochs(1, 3.0)
    alone.tel("gpu_freq_mhz", clocks([1620.0] * 30), "powermetrics")
    assert by_id(diagnose(alone.load()).findings, "gpu-clock-sources") == []


def test_readings_far_apart_in_time_are_not_paired(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_gpu").epochs(1, 10.0)
    run.tel("gpu_freq_mhz", clocks([500.0] * 20), "macmon")
    run.tel("gpu_freq_mhz", clocks([1500.0] * 20, 5000), "powermetrics")  # 5 s later: no overlap
    assert by_id(diagnose(run.load()).findings, "gpu-clock-sources") == []
