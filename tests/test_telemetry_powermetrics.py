"""powermetrics: the stream parser on the three real recordings (tests/fixtures/powermetrics),
broken streams, the parse-powermetrics command, and the live source against a stand-in
`powermetrics` and `sudo` on PATH."""

from __future__ import annotations

import io
import math
import os
import plistlib
import re
import stat
import sys
import time
from pathlib import Path

import pytest
from helpers import rows_until_the_source_fails
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnprof.errors import UserError
from cnnprof.profiler.telemetry.base import SourceConfig
from cnnprof.profiler.telemetry.powermetrics import (
    EXECUTABLE_ENV,
    DocumentSplitter,
    PowermetricsParser,
    PowermetricsSource,
    parse_powermetrics_command,
)

FIXTURES = Path(__file__).parent / "fixtures" / "powermetrics"
M1 = FIXTURES / "01_m1_MacBookPro17-1_macos13.3-22E252_plist_single.xml"
M2_ULTRA = FIXTURES / "02_m2ultra_Mac14-14_macos14.4-23E224_plist_single.xml"
M4_STREAM = FIXTURES / "04_m4pro_Mac16-8_macos15.5-24F74_plist_stream5_gpuonly_i5000ms.plist"


def parse_all(data: bytes, cuts: list[int] | None = None) -> tuple[list, int]:
    """(samples, skipped) from feeding `data` cut at `cuts`."""
    parser = PowermetricsParser()
    bounds = [0, *(cuts or []), len(data)]
    samples = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        samples += parser.feed(data[a:b])
    parser.close()
    return samples, parser.skipped


def only_sample(path: Path) -> dict[str, float]:
    samples, skipped = parse_all(path.read_bytes())
    assert len(samples) == 1 and skipped == 0
    return samples[0].values


# -- the recordings, against hand computation ------------------------------------------------
def cores_by_cluster(doc: dict) -> dict[str, list[tuple[int, float, float]]]:
    """Independently of the parser: cluster name -> [(cpu, busy 0..1, MHz)] straight from plistlib."""
    return {
        c["name"]: [(x["cpu"], 1 - x["idle_ratio"], x["freq_hz"] / 1e6) for x in c["cpus"]]
        for c in doc["processor"]["clusters"]
    }


def active_and_freq(cores: list[tuple[int, float, float]]) -> tuple[float, float]:
    busy = sum(b for _, b, _ in cores)
    return 100 * busy / len(cores), sum(b * f for _, b, f in cores) / busy


def test_m1_matches_hand_computation() -> None:
    values = only_sample(M1)
    # Literal numbers read off the XML: processor.gpu_power 15.3528 mW, cpu_power 44.0773 mW,
    # combined 59.4301 mW, gpu freq_hz 714.836 (MHz), gpu idle_ratio 0.983341, elapsed 2019178750 ns.
    assert values["gpu_power_w"] == pytest.approx(0.0153528)
    assert values["cpu_power_w"] == pytest.approx(0.0440773)
    assert values["combined_power_w"] == pytest.approx(0.0594301)
    assert values["ane_power_w"] == 0.0
    assert values["gpu_freq_mhz"] == pytest.approx(714.836)
    assert values["gpu_active_pct"] == pytest.approx(1.6659)
    assert values["window_ms"] == pytest.approx(2019.17875)
    assert values["thermal_pressure_level"] == 0.0
    # E cores 0-3 idle 0.907821, 0.907626, 0.906645, 0.946967 -> busy mean 8.27353 %.
    assert values["e_cluster_active_pct"] == pytest.approx(8.27353, abs=1e-5)
    assert values["cluster.E.active_pct"] == values["e_cluster_active_pct"]
    assert values["core.3.freq_mhz"] == pytest.approx(1010.65)
    assert values["core.3.active_pct"] == pytest.approx(100 * (1 - 0.946967))


def test_m2_ultra_six_clusters_aggregate_from_cores() -> None:
    doc = plistlib.loads(M2_ULTRA.read_bytes())
    values = only_sample(M2_ULTRA)
    clusters = cores_by_cluster(doc)
    assert list(clusters) == [
        "E0-Cluster",
        "P0-Cluster",
        "P1-Cluster",
        "E1-Cluster",
        "P2-Cluster",
        "P3-Cluster",
    ]
    e_cores = clusters["E0-Cluster"] + clusters["E1-Cluster"]
    p_cores = [core for name in ("P0", "P1", "P2", "P3") for core in clusters[f"{name}-Cluster"]]
    for prefix, cores in (("e_cluster_", e_cores), ("p_cluster_", p_cores)):
        active, freq = active_and_freq(cores)
        assert values[f"{prefix}active_pct"] == pytest.approx(active)
        assert values[f"{prefix}freq_mhz"] == pytest.approx(freq)
    for name, cores in clusters.items():
        active, freq = active_and_freq(cores)
        key = name.removesuffix("-Cluster")
        assert values[f"cluster.{key}.active_pct"] == pytest.approx(active)
        assert values[f"cluster.{key}.freq_mhz"] == pytest.approx(freq)
        for cpu, busy, mhz in cores:
            assert values[f"core.{cpu}.active_pct"] == pytest.approx(100 * busy)
            assert values[f"core.{cpu}.freq_mhz"] == pytest.approx(mhz)
    # Figures worked out by hand from the XML (8 E cores, 16 P cores):
    assert values["e_cluster_active_pct"] == pytest.approx(22.8939, abs=1e-3)
    assert values["e_cluster_freq_mhz"] == pytest.approx(988.497, abs=1e-2)
    assert values["p_cluster_active_pct"] == pytest.approx(0.92011, abs=1e-4)
    # The cluster-level idle_ratio of E0 (0.0413: 96 % busy) is the unreliable one; cores say 38 %.
    assert values["cluster.E0.active_pct"] == pytest.approx(38.1014, abs=1e-3)
    # processor.gpu_power (70924.6 mW) is used, not gpu.gpu_energy (73491 mJ over 1.0237 s).
    assert values["gpu_power_w"] == pytest.approx(70.9246)
    assert values["combined_power_w"] == pytest.approx(71.7598)
    assert values["gpu_active_pct"] == pytest.approx(100 * (1 - 0.0536782))
    assert sum(k.startswith("core.") and k.endswith(".active_pct") for k in values) == 24


def test_m4_gpu_only_stream_five_documents() -> None:
    data = M4_STREAM.read_bytes()
    samples, skipped = parse_all(data)
    assert skipped == 0
    docs = [plistlib.loads(part) for part in data.split(b"\0")]
    assert len(samples) == len(docs) == 5
    for sample, doc in zip(samples, docs, strict=True):
        assert sample.elapsed_ns == doc["elapsed_ns"]
        # No processor dict with --samplers gpu_power: power is gpu.gpu_energy (mJ) over the window.
        assert sample.values["gpu_power_w"] == pytest.approx(
            doc["gpu"]["gpu_energy"] / 1000 / (doc["elapsed_ns"] / 1e9)
        )
        assert sample.values["gpu_freq_mhz"] == doc["gpu"]["freq_hz"]
        assert "cpu_power_w" not in sample.values and "thermal_pressure_level" not in sample.values
        assert not any(k.startswith(("e_cluster", "p_cluster", "core.")) for k in sample.values)
    assert samples[0].values["gpu_power_w"] == pytest.approx(19 / 5.004758375 / 1000)  # 3.796 mW
    assert samples[2].values["gpu_active_pct"] == pytest.approx(100 * (1 - 0.917447))


# -- chunking --------------------------------------------------------------------------------
def test_every_cut_offset_yields_the_same_documents() -> None:
    """Cut at every byte offset, the splitter gives the same five documents (rows are a pure
    function of a document, and the next test checks rows across cuts)."""
    data = M4_STREAM.read_bytes()
    whole = DocumentSplitter()
    expected = whole.feed(data)
    whole.close()
    assert len(expected) == 5 and whole.truncated == 0
    for k in range(len(data) + 1):
        splitter = DocumentSplitter()
        docs = splitter.feed(data[:k]) + splitter.feed(data[k:])
        splitter.close()
        assert docs == expected, k
        assert splitter.truncated == 0, k


def test_cuts_around_every_boundary_yield_the_same_rows() -> None:
    data = M4_STREAM.read_bytes()
    expected, _ = parse_all(data)
    marks = [i for i in range(len(data)) if data[i : i + 8] == b"</plist>" or data[i] == 0]
    for mark in marks:
        for k in range(max(0, mark - 12), min(len(data), mark + 12)):
            assert parse_all(data, [k]) == (expected, 0), k


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=M4_STREAM.stat().st_size), max_size=40))
def test_random_chunkings_yield_the_same_rows(cuts: list[int]) -> None:
    data = M4_STREAM.read_bytes()
    assert parse_all(data, sorted(cuts)) == parse_all(data)


# -- broken streams ---------------------------------------------------------------------------
def test_truncated_stream_skips_the_partial_document() -> None:
    data = M4_STREAM.read_bytes()
    third = data.index(b"\0", data.index(b"\0") + 1) + 1
    samples, skipped = parse_all(data[: third + 4000])
    assert len(samples) == 2 and skipped == 1


def test_document_cut_short_then_next_one_is_skipped_and_counted() -> None:
    docs = M4_STREAM.read_bytes().split(b"\0")
    docs[1] = docs[1][: len(docs[1]) // 2]  # the writer died mid-document, then a new one began
    samples, skipped = parse_all(b"\0".join(docs))
    assert len(samples) == 4 and skipped == 1


def test_corrupted_document_is_skipped_others_parse() -> None:
    docs = M4_STREAM.read_bytes().split(b"\0")
    docs[3] = docs[3].replace(b"<real>", b"<rea1>", 1)
    samples, skipped = parse_all(b"\0".join(docs), cuts=[100, 20000])
    assert [round(s.values["gpu_freq_mhz"], 3) for s in samples] == [426.525, 479.398, 867.616, 458.421]
    assert skipped == 1


def test_garbage_is_counted_never_raised() -> None:
    samples, skipped = parse_all(b"not a plist\0\0<?xml half</plist>\n\0<plist>")
    assert samples == [] and skipped == 3


def test_missing_keys_and_unknown_clusters_do_not_crash() -> None:
    doc = {
        "elapsed_ns": 100_000_000,
        "thermal_pressure": ["not", "a", "string"],
        "gpu": "not a dict",
        "processor": {
            "cpu_power": "n/a",
            "clusters": [
                {"name": 7, "cpus": [{"cpu": "x"}]},
                {"name": "S-Cluster", "cpus": [{"cpu": 0, "idle_ratio": 0.25, "freq_hz": 4.0e9}]},
                {"name": "M0-Cluster", "cpus": [{"cpu": 1, "freq_hz": 3.0e9}, {"cpu": 2, "idle_ratio": 1.0}]},
                {"name": "E-Cluster", "cpus": [{"cpu": 3, "idle_ratio": 1.0, "freq_hz": 1.0e9}]},
                "not a dict",
            ],
        },
    }
    samples, skipped = parse_all(plistlib.dumps(doc))
    assert skipped == 0
    values = samples[0].values
    assert values["cluster.S.active_pct"] == 75.0 and values["cluster.S.freq_mhz"] == 4000.0
    assert values["cluster.M0.active_pct"] == 0.0 and values["cluster.M0.freq_mhz"] == 3000.0
    assert values["e_cluster_active_pct"] == 0.0 and values["e_cluster_freq_mhz"] == 1000.0  # idle: plain mean
    assert "p_cluster_active_pct" not in values  # S and M clusters stay out of the E/P aggregates
    assert not any(k.startswith(("gpu_", "cpu_power", "thermal")) for k in values)


@pytest.mark.parametrize(
    ("tag", "value"),
    [("real", "inf"), ("real", "nan"), ("real", "-inf"), ("integer", "9" * 400)],
)
def test_non_finite_and_huge_numbers_are_left_out_and_reading_goes_on(tag: str, value: str) -> None:
    """<real>inf</real> in elapsed_ns or a cpu index, an integer past a float's range: each value is
    left out like a missing one, and the documents after it still parse."""
    bad = f"<{tag}>{value}</{tag}>"
    doc = plistlib.dumps(
        {
            "elapsed_ns": 1,
            "processor": {
                "cpu_power": 1.0,
                "clusters": [{"name": "E-Cluster", "cpus": [{"cpu": 1, "idle_ratio": 0.5, "freq_hz": 2.0}]}],
            },
        }
    )
    doc = doc.replace(b"<integer>1</integer>", bad.encode(), 2)  # elapsed_ns and the cpu index
    doc = doc.replace(b"<real>1.0</real>", bad.encode(), 1)  # cpu_power
    good = M4_STREAM.read_bytes().split(b"\0")[0]
    samples, skipped = parse_all(b"\0".join([good, doc, good]))
    assert skipped == 0 and len(samples) == 3
    assert samples[1].elapsed_ns is None
    assert all(math.isfinite(v) for s in samples for v in s.values.values())
    assert not any(k.startswith(("core.", "cpu_power")) for k in samples[1].values)
    assert samples[2].values == samples[0].values


def test_parse_command_survives_a_non_finite_elapsed(tmp_path: Path) -> None:
    docs = M4_STREAM.read_bytes().split(b"\0")
    docs[1] = re.sub(rb"(<key>elapsed_ns</key>\s*)<integer>\d+</integer>", rb"\1<real>inf</real>", docs[1])
    capture = tmp_path / "capture.plist"
    capture.write_bytes(b"\0".join(docs))
    out = io.StringIO()
    assert parse_powermetrics_command(capture, True, out) == 0
    assert "inf" not in out.getvalue() and "nan" not in out.getvalue()


# -- parse-powermetrics command ---------------------------------------------------------------
def test_parse_command_csv_times_from_cumulative_elapsed() -> None:
    out = io.StringIO()
    assert parse_powermetrics_command(M4_STREAM, True, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "t_s,metric,value"
    rows = [line.split(",") for line in lines[1:]]
    times = sorted({float(t) for t, _, _ in rows})
    elapsed = [5004758375, 5014447083, 5010073541, 5014230916, 5009178500]
    assert times == pytest.approx([sum(elapsed[: i + 1]) / 1e9 for i in range(5)])
    assert ["5.004758", "gpu_freq_mhz", "426.525"] in rows


def test_parse_command_summary_table() -> None:
    out = io.StringIO()
    assert parse_powermetrics_command(M2_ULTRA, False, out) == 0
    text = out.getvalue()
    assert "e_cluster_active_pct" in text and "70.92" in text and "MHz" in text


@pytest.mark.parametrize("content", [None, b"", b"<html>not powermetrics</html>"])
def test_parse_command_bad_file_is_a_user_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "capture.plist"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match="capture.plist"):
        parse_powermetrics_command(path, False, io.StringIO())


# -- the live source with stand-ins on PATH ---------------------------------------------------
FAKE_POWERMETRICS = """#!{python}
# Replays a recorded stream at the interval asked with -i, like powermetrics -f plist does.
import sys, time
docs = open({recording!r}, "rb").read().split(b"\\0")
interval = int(sys.argv[sys.argv.index("-i") + 1]) / 1000
out = sys.stdout.buffer
n = 0
while True:
    time.sleep(interval)
    out.write((b"\\0" if n else b"") + docs[n % len(docs)])
    out.flush()
    n += 1
"""


def install(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder first on PATH with a replaying `powermetrics` and a `sudo` that runs its command."""
    folder = tmp_path / "bin"
    folder.mkdir()
    install(folder, "powermetrics", FAKE_POWERMETRICS.format(python=sys.executable, recording=str(M4_STREAM)))
    install(folder, "sudo", '#!/bin/sh\n[ "$1" = "-n" ] && shift\nexec "$@"\n')
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(EXECUTABLE_ENV, raising=False)
    return folder


def test_live_source_reads_the_replayed_stream(fake_bin: Path) -> None:
    source = PowermetricsSource(SourceConfig(100, os.getpid()), require_macos=False, sudo=True)
    assert source.command()[0][:3] == [str(fake_bin / "sudo"), "-n", str(fake_bin / "powermetrics")]
    try:
        status = source.probe()
        assert status.ok, status
        rows = []
        deadline = time.monotonic() + 5
        while len({t for t, _, _ in rows}) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
            rows += source.read(time.perf_counter_ns())
        process = source._proc
    finally:
        source.close()
    assert process is not None and process.poll() is not None  # close() ended it
    freqs = [v for _, m, v in rows if m == "gpu_freq_mhz"]
    assert freqs[:4] == [426.525, 479.398, 867.616, 483.431]
    assert [v for _, m, v in rows if m == "window_ms"][0] == pytest.approx(5004.758375)
    times = sorted({t for t, _, _ in rows})
    gaps_ms = [(b - a) / 1e6 for a, b in zip(times, times[1:], strict=False)]
    assert all(50 < gap < 400 for gap in gaps_ms), gaps_ms  # stamped on arrival, ~100 ms apart


def test_powermetrics_exiting_mid_run_fails_the_source_after_its_last_rows(fake_bin: Path) -> None:
    install(
        fake_bin,
        "powermetrics",
        FAKE_POWERMETRICS.format(python=sys.executable, recording=str(M4_STREAM)).replace(
            "while True:", "for _ in range(2):"
        )
        + "sys.stderr.write('powermetrics: lost the SMC\\n')\nsys.exit(3)\n",
    )
    source = PowermetricsSource(SourceConfig(100, os.getpid()), require_macos=False, sudo=True)
    assert source.probe().ok
    rows = rows_until_the_source_fails(source, r"powermetrics exited \(code 3\): powermetrics: lost the SMC")
    assert [v for _, m, v in rows if m == "gpu_freq_mhz"] == [426.525, 479.398]


def test_without_passwordless_sudo_unavailable_with_the_sudoers_fix(fake_bin: Path) -> None:
    install(fake_bin, "sudo", '#!/bin/sh\necho "sudo: a password is required" >&2\nexit 1\n')
    source = PowermetricsSource(SourceConfig(100, os.getpid()), require_macos=False, sudo=True)
    status = source.probe()
    source.close()
    assert not status.ok
    assert "a password is required" in status.reason
    assert status.fix == (
        f'echo "$USER ALL=(root) NOPASSWD: {fake_bin / "powermetrics"}" | sudo tee /etc/sudoers.d/cnnprof'
    )


def test_not_macos_or_no_binary_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXECUTABLE_ENV, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert "only on macOS" in PowermetricsSource(SourceConfig(100, 1)).probe().reason
    monkeypatch.setenv("PATH", str(tmp_path))
    status = PowermetricsSource(SourceConfig(100, 1), require_macos=False).probe()
    assert not status.ok and "not found" in status.reason


def test_cli_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    from cnnprof.cli import main

    assert main(["telemetry", "parse-powermetrics", str(M1), "--csv"]) == 0
    assert capsys.readouterr().out.startswith("t_s,metric,value\n2.019179,window_ms,2019.17875\n")
    assert main(["telemetry", "parse-powermetrics", str(M1.with_name("missing.xml"))]) == 2
    assert "missing.xml: cannot read" in capsys.readouterr().err
