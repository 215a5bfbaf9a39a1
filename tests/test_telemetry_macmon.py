"""macmon: the line parser on real `macmon pipe` output of three versions (tests/fixtures/macmon),
broken and chunked streams, the live source against a stand-in `macmon` on PATH, `auto`
preferring macmon over powermetrics, and doctor on a machine without macmon."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from helpers import rows_until_the_source_fails
from hypothesis import given, settings
from hypothesis import strategies as st
from test_telemetry_powermetrics import FAKE_POWERMETRICS, M4_STREAM, install

from cnnprof.profiler.telemetry.base import SourceConfig
from cnnprof.profiler.telemetry.macmon import EXECUTABLE_ENV, LineParser, MacmonSource, parse_lines, sample_values
from cnnprof.profiler.telemetry.registry import FALLBACKS, probe_all

FIXTURES = Path(__file__).parent / "fixtures" / "macmon"
V05 = FIXTURES / "01_v0.5_codecarbon_mock_macmon_log.jsonl"
V07 = FIXTURES / "02_v0.7_beszel-issue-1796_m-series.jsonl"
V08 = FIXTURES / "03_v0.8.2_readme-example_as-emitted.jsonl"
MIB = 1 << 20


def only_sample(path: Path) -> dict[str, float]:
    samples, skipped = parse_lines(path.read_bytes())
    assert len(samples) == 1 and skipped == 0
    return samples[0]


# -- the recordings, against numbers read off the lines ---------------------------------------
def test_v05_tuples_are_frequency_and_scaled_ratio_never_active_residency() -> None:
    samples, skipped = parse_lines(V05.read_bytes())
    assert len(samples) == 10 and skipped == 0
    first = samples[0]
    assert first["cpu_power_w"] == pytest.approx(0.47729987)
    assert first["gpu_power_w"] == pytest.approx(0.025773834)
    assert first["ane_power_w"] == 0.0
    assert first["combined_power_w"] == pytest.approx(0.5030737)  # all_power: CPU + GPU + ANE
    assert first["board_power_w"] == pytest.approx(12.617373)
    assert first["gpu_freq_mhz"] == 396
    assert first["gpu_scaled_pct"] == pytest.approx(5.2929282)
    assert first["e_cluster_freq_mhz"] == 1221 and first["p_cluster_freq_mhz"] == 2813
    assert first["e_cluster_scaled_pct"] == pytest.approx(5.9566148)
    assert first["cpu_temp_c"] == pytest.approx(47.99754) and first["gpu_temp_c"] == pytest.approx(44.168976)
    assert first["ram_used_mb"] == pytest.approx(7016267776 / MIB)
    assert first["swap_used_mb"] == pytest.approx(5806751744 / MIB)
    # Before v0.8 there is no active residency: nothing may pose as powermetrics' active %.
    assert not any(key.endswith("active_pct") for sample in samples for key in sample)
    # ram_power / gpu_ram_power are 0.0 on this machine: not read, so left out.
    assert "dram_power_w" not in first and "gpu_sram_power_w" not in first
    assert samples[-1]["p_cluster_freq_mhz"] == 1914


def test_v07_sorted_keys_timestamp_and_an_unread_gpu_sensor() -> None:
    values = only_sample(V07)
    assert values["gpu_freq_mhz"] == 198
    assert values["gpu_scaled_pct"] == pytest.approx(0.4153179936110973)
    assert values["board_power_w"] == pytest.approx(9.391488075256348)
    assert values["cpu_temp_c"] == pytest.approx(44.509185791015625)
    assert "gpu_temp_c" not in values  # gpu_temp_avg 0.0: no GPU sensor read
    assert "timestamp" not in values and not any(k.startswith("core.") for k in values)


def test_v08_active_residency_per_core_and_powermetrics_cluster_frequency() -> None:
    values = only_sample(V08)
    assert values["gpu_active_pct"] == pytest.approx(9.0)
    assert values["gpu_scaled_pct"] == pytest.approx(2.1497859)
    assert values["gpu_freq_mhz"] == 461
    assert values["cpu_busy_pct"] == pytest.approx(9.2)
    assert values["e_cluster_active_pct"] == pytest.approx(18.0)
    assert values["p_cluster_active_pct"] == pytest.approx(4.0)
    # Busy-weighted like powermetrics' cluster MHz, not macmon's plain mean (1100 / 1800 there):
    assert values["e_cluster_freq_mhz"] == pytest.approx((0.24 * 1600 + 0.2 * 1700) / 0.44)
    assert values["p_cluster_freq_mhz"] == pytest.approx((0.08 * 2100 + 0.06 * 2200) / 0.14)
    assert values["cluster.E.active_pct"] == values["e_cluster_active_pct"]
    assert values["core.E0_1.active_pct"] == pytest.approx(20.0)
    assert values["core.P0_0.freq_mhz"] == 2100
    assert values["e_cluster_scaled_pct"] == pytest.approx(8.2656614)  # the named field, = the alias
    assert values["dram_power_w"] == pytest.approx(0.11635789)
    assert values["gpu_sram_power_w"] == pytest.approx(0.0009615385)
    assert values["fan.fan0.rpm"] == 999 and values["fan.fan1.rpm"] == 1200


def test_m5_tier_labels_from_soc_info() -> None:
    """On M5 Pro/Max macmon's ecpu tier is the P cores and pcpu the S cores (soc.*_label)."""
    doc = json.loads(V08.read_text())
    doc["soc"] = {"chip_name": "Apple M5 Max", "ecpu_label": "P", "pcpu_label": "S"}
    values = sample_values(doc)
    assert values["p_cluster_active_pct"] == pytest.approx(18.0)  # macmon's ecpu_active_ratio
    assert values["cluster.S.active_pct"] == pytest.approx(4.0)
    assert "e_cluster_active_pct" not in values and "core.S0_0.freq_mhz" in values


def test_idle_cores_fall_back_to_macmons_cluster_frequency() -> None:
    doc = {
        "ecpu_freq_mhz": 912,
        "ecpu_active_ratio": 0.0,
        "ecpu_cores": [{"core_id": 0, "die_id": 0, "freq_mhz": 0, "active_ratio": 0.0}],
    }
    assert sample_values(doc)["e_cluster_freq_mhz"] == 912


# -- chunking and broken streams --------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=V05.stat().st_size), max_size=30))
def test_random_chunkings_yield_the_same_samples(cuts: list[int]) -> None:
    data = V05.read_bytes()
    parser = LineParser()
    bounds = [0, *sorted(cuts), len(data)]
    samples = [s for a, b in zip(bounds, bounds[1:], strict=False) for s in parser.feed(data[a:b])]
    parser.close()
    assert (samples, parser.skipped) == parse_lines(data)


def test_torn_last_line_and_garbage_are_counted_never_raised() -> None:
    data = V05.read_bytes()
    samples, skipped = parse_lines(data[: len(data) - 40])
    assert len(samples) == 9 and skipped == 1
    samples, skipped = parse_lines(b'not json\n[1, 2]\n\n{"gpu_usage": "x", "temp": 3}\n\xff\xfe\n')
    assert samples == [{}] and skipped == 3


# -- the live source with a stand-in on PATH --------------------------------------------------
FAKE_MACMON = """#!{python}
# Replays recorded lines at the interval asked with -i, as `macmon pipe` does.
import sys, time
args = sys.argv[1:]
if {old} and "--soc-info" in args:
    sys.stderr.write("error: unexpected argument '--soc-info' found\\n")
    sys.exit(2)
open({argv_log!r}, "a").write(" ".join(args) + "\\n")
lines = open({recording!r}).read().splitlines()
interval = int(args[args.index("-i") + 1]) / 1000
for n in range({count}):
    time.sleep(interval)
    print(lines[n % len(lines)], flush=True)
sys.stderr.write("macmon: IOReport went away\\n")
sys.exit(3)
"""


def install_macmon(folder: Path, *, old: bool = False, count: int = 10**6, recording: Path = V05) -> Path:
    folder.mkdir(exist_ok=True)
    text = FAKE_MACMON.format(
        python=sys.executable, old=old, argv_log=str(folder / "argv.log"), recording=str(recording), count=count
    )
    return install(folder, "macmon", text)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    install_macmon(folder)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(EXECUTABLE_ENV, "macmon")  # lifts the macOS check
    return folder


def read_rows(source: MacmonSource, windows: int) -> list[tuple[int, str, float]]:
    rows: list[tuple[int, str, float]] = []
    deadline = time.monotonic() + 10
    while len({t for t, m, _ in rows if m == "window_ms"}) < windows and time.monotonic() < deadline:
        time.sleep(0.05)
        rows += source.read(time.perf_counter_ns())
    return rows


def test_live_source_reads_lines_stamped_on_arrival(fake_bin: Path) -> None:
    source = MacmonSource(SourceConfig(20, os.getpid()))  # below macmon's 100 ms floor: asks 100
    try:
        assert source.probe().ok
        rows = read_rows(source, 3)
        process = source._proc
    finally:
        source.close()
    assert process is not None and process.poll() is not None  # close() ended it
    assert (fake_bin / "argv.log").read_text() == "pipe -i 100 --soc-info\n"
    assert [v for _, m, v in rows if m == "gpu_scaled_pct"][:3] == pytest.approx([5.2929282, 6.3834384, 5.4138985])
    windows = [v for _, m, v in rows if m == "window_ms"]
    assert windows[0] == 100.0  # the first: the asked interval
    assert all(w >= 90 for w in windows)  # the fake sleeps 100 ms between lines (a lower bound only)
    stamps = sorted({t for t, _, _ in rows})
    assert len(stamps) == len(windows)  # one stamp per line, all its metrics at it


def test_macmon_before_v07_runs_without_soc_info(fake_bin: Path) -> None:
    install_macmon(fake_bin, old=True)
    source = MacmonSource(SourceConfig(100, os.getpid()))
    try:
        assert source.probe().ok
        rows = read_rows(source, 1)
    finally:
        source.close()
    assert (fake_bin / "argv.log").read_text() == "pipe -i 100\n"
    assert any(m == "gpu_freq_mhz" for _, m, _ in rows)


def test_macmon_exiting_mid_run_fails_the_source_after_its_last_rows(fake_bin: Path) -> None:
    install_macmon(fake_bin, count=2)
    source = MacmonSource(SourceConfig(100, os.getpid()))
    assert source.probe().ok
    rows = rows_until_the_source_fails(source, r"macmon exited \(code 3\): macmon: IOReport went away")
    assert [v for _, m, v in rows if m == "gpu_freq_mhz"] == [396, 396]


def test_not_macos_or_not_installed_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXECUTABLE_ENV, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert MacmonSource(SourceConfig(100, 1)).probe().reason == "macmon exists only on macOS (Apple Silicon)"
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setenv("PATH", str(tmp_path))
    status = MacmonSource(SourceConfig(100, 1)).probe()
    assert not status.ok and "not found on PATH" in status.reason and status.fix == "brew install macmon"


def test_auto_prefers_macmon_and_a_named_list_samples_both(fake_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(fake_bin, "powermetrics", FAKE_POWERMETRICS.format(python=sys.executable, recording=str(M4_STREAM)))
    monkeypatch.setenv("CNNPROF_POWERMETRICS", "powermetrics")
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # as root: no sudo in the way
    config = SourceConfig(100, os.getpid())
    for fallbacks, both in ((FALLBACKS, False), (None, True)):
        working, statuses = probe_all(["macmon", "powermetrics"], config, fallbacks=fallbacks)
        for source in working.values():
            source.close()
        assert statuses["macmon"].ok
        assert statuses["powermetrics"].ok is both
        if not both:
            assert statuses["powermetrics"].reason == "macmon is sampled instead"
            assert statuses["powermetrics"].fix == "--telemetry macmon,powermetrics samples both"


def test_every_macmon_metric_is_in_the_vocabulary() -> None:
    from cnnprof.profiler.telemetry.macmon import METRICS
    from cnnprof.traces.metrics import lane_of, lookup

    written = {m for path in (V05, V07, V08) for sample in parse_lines(path.read_bytes())[0] for m in sample}
    assert written and not [m for m in set(METRICS) | written if lookup(m) is None]
    assert lane_of("board_power_w") == "power" and lane_of("gpu_temp_c") == "thermal"
    assert lane_of("gpu_active_pct") == "gpu_activity"  # powermetrics' name, read as the vocabulary's


# -- doctor -----------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_doctor_without_macmon(
    platform: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnnprof import cli, terminal
    from cnnprof.models import backends

    monkeypatch.setattr(backends, "BACKENDS", {})  # the backends' table is not what is tested
    monkeypatch.setattr(terminal.console, "width", 300)
    monkeypatch.delenv(EXECUTABLE_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "platform", platform)
    assert cli.main(["doctor"]) == 0
    row = next(line for line in capsys.readouterr().err.splitlines() if "macmon" in line)
    if platform == "linux":
        assert "macmon exists only on macOS" in row
    else:
        assert "not found on PATH" in row and "brew install macmon" in row


def test_auto_through_the_sampler_process_takes_macmon(fake_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnprof.profiler.telemetry import start_sampler
    from cnnprof.profiler.telemetry.launcher import STREAM_NAME
    from cnnprof.traces.tables import telemetry_table

    install(fake_bin, "powermetrics", FAKE_POWERMETRICS.format(python=sys.executable, recording=str(M4_STREAM)))
    install(fake_bin, "sudo", '#!/bin/sh\n[ "$1" = "-n" ] && shift\nexec "$@"\n')
    monkeypatch.setenv("CNNPROF_POWERMETRICS", "powermetrics")
    run_dir = tmp = fake_bin.parent / "run"
    t0 = time.perf_counter_ns()
    handle = start_sampler(run_dir, "auto", 100, t0)
    deadline = time.monotonic() + 10
    while b"macmon,gpu_freq_mhz" not in (tmp / STREAM_NAME).read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    result = handle.stop()
    assert result.sources["macmon"] == "ok"
    assert result.sources["powermetrics"] == "unavailable: macmon is sampled instead"
    frame = telemetry_table(run_dir / STREAM_NAME, t0).to_pandas()  # as the first reader builds it
    macmon = frame[frame["source"] == "macmon"]
    assert set(macmon["metric"]) >= {"gpu_freq_mhz", "combined_power_w", "window_ms", "e_cluster_scaled_pct"}
    assert result.metrics["macmon.board_power_w"]["unit"] == "W"
