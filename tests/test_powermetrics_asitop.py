"""asitop as an independent oracle for cnnprof's powermetrics parser, on the real recordings in
tests/fixtures/powermetrics/ (asitop is pure Python; the dev extra installs it).

Where both read a value they agree, to asitop's own rounding (it truncates to integers):
per-core frequency and busy %, GPU frequency and busy %, thermal pressure, and power. asitop's
CPU / GPU / ANE "W" are the window's `*_energy` in mJ / 1000, i.e. joules, which it divides by
the interval it asked for; cnnprof reads the averaged `*_power` (mW): the two agree as energy =
power x elapsed, to the 1 mJ the integer energy field is rounded to.

What differs by design, checked as such: asitop's cluster figures are the cluster-level
`idle_ratio` / `freq_hz`, which are unreliable on M2/M3 (fixtures README); cnnprof derives its
cluster figures from the per-core values, and so does the mean of asitop's own per-core figures.

Where asitop cannot read a recording: 04 (M4 Pro, `--samplers gpu_power` only) has no
`processor` and no `thermal_pressure`, so asitop's CPU and thermal parsers raise KeyError, and so
does its reader (`utils.parse_powermetrics`); only its GPU parser works there. asitop also
classifies any cluster that is not `E*` as a P cluster and then needs `P0-Cluster` or
`P-Cluster`, so the `M0-Cluster` / `S-Cluster` names reported for M5 chips would fail it as well
(no recording of those is in the fixtures).
"""

from __future__ import annotations

import plistlib
from pathlib import Path
from typing import Any

import pytest
from asitop import parsers as asitop
from asitop import utils as asitop_utils

from cnnprof.profiler.telemetry.powermetrics import THERMAL_LEVELS, parse_capture

FIXTURES = Path(__file__).parent / "fixtures" / "powermetrics"
M1 = FIXTURES / "01_m1_MacBookPro17-1_macos13.3-22E252_plist_single.xml"
M2_ULTRA = FIXTURES / "02_m2ultra_Mac14-14_macos14.4-23E224_plist_single.xml"
M4_GPU_ONLY = FIXTURES / "04_m4pro_Mac16-8_macos15.5-24F74_plist_stream5_gpuonly_i5000ms.plist"


def _both(path: Path) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """(the document as asitop loads it, cnnprof's values for it), per document."""
    data = path.read_bytes()
    docs = [plistlib.loads(d) for d in data.split(b"\x00") if d.strip()]  # as asitop splits a stream
    ours, skipped = parse_capture(data)
    assert skipped == 0 and len(ours) == len(docs)
    return [(doc, values) for doc, (_, values) in zip(docs, ours)]


@pytest.mark.parametrize("path", [M1, M2_ULTRA], ids=["m1", "m2ultra"])
def test_cpu_cores_thermal_and_power_agree(path: Path) -> None:
    ((doc, ours),) = _both(path)
    cpu = asitop.parse_cpu_metrics(doc)
    cores = cpu["e_core"] + cpu["p_core"]
    assert cores and len(cores) == sum(1 for k in ours if k.startswith("core.") and k.endswith(".active_pct"))
    for n in cores:
        prefix = ("E" if n in cpu["e_core"] else "P") + f"-Cluster{n}"
        assert int(ours[f"core.{n}.freq_mhz"]) == cpu[f"{prefix}_freq_Mhz"], n
        assert int(ours[f"core.{n}.active_pct"]) == cpu[f"{prefix}_active"], n
    for kind in ("e", "p"):  # the mean of asitop's truncated per-core figures vs cnnprof's mean
        own = [cpu[f"{kind.upper()}-Cluster{n}_active"] for n in cpu[f"{kind}_core"]]
        assert ours[f"{kind}_cluster_active_pct"] - 1 <= sum(own) / len(own) <= ours[f"{kind}_cluster_active_pct"]
    assert ours["thermal_pressure_level"] == THERMAL_LEVELS[asitop.parse_thermal_pressure(doc)]
    elapsed_s = doc["elapsed_ns"] / 1e9
    assert cpu["package_W"] == pytest.approx(ours["combined_power_w"])  # both mW / 1000
    for theirs, key in (("cpu_W", "cpu_power_w"), ("ane_W", "ane_power_w")):
        assert cpu[theirs] == pytest.approx(ours[key] * elapsed_s, abs=0.001), theirs  # J, to 1 mJ


def test_gpu_agrees_on_every_recording() -> None:
    pairs = [pair for path in (M1, M2_ULTRA, M4_GPU_ONLY) for pair in _both(path)]
    assert len(pairs) == 7
    for doc, ours in pairs:
        gpu = asitop.parse_gpu_metrics(doc)
        assert int(ours["gpu_freq_mhz"]) == gpu["freq_MHz"]
        assert int(ours["gpu_active_pct"]) == gpu["active"]


def test_cluster_figures_differ_where_the_cluster_idle_ratio_is_unreliable() -> None:
    ((doc, ours),) = _both(M2_ULTRA)
    cpu = asitop.parse_cpu_metrics(doc)
    # asitop: 75 % (the E clusters' own idle_ratio); their cores were 23 % busy on average.
    assert cpu["E-Cluster_active"] == 75 and round(ours["e_cluster_active_pct"]) == 23
    e0 = next(c for c in doc["processor"]["clusters"] if c["name"] == "E0-Cluster")
    assert cpu["E0-Cluster_active"] == int(100 * (1 - e0["idle_ratio"]))


def test_asitop_cannot_read_the_gpu_only_stream(tmp_path: Path) -> None:
    for doc, ours in _both(M4_GPU_ONLY):
        with pytest.raises(KeyError):
            asitop.parse_cpu_metrics(doc)
        with pytest.raises(KeyError):
            asitop.parse_thermal_pressure(doc)
        assert "gpu_power_w" in ours and "cpu_power_w" not in ours
    copy = tmp_path / "capture0"
    copy.write_bytes(M4_GPU_ONLY.read_bytes())
    with pytest.raises(KeyError):  # its reader retries the document before the last, which fails the same
        asitop_utils.parse_powermetrics(str(tmp_path / "capture"), "0")
    copy.write_bytes(M1.read_bytes())  # its reader on a recording it can read: the same document
    cpu, gpu, thermal, _, _ = asitop_utils.parse_powermetrics(str(tmp_path / "capture"), "0")
    assert thermal == "Nominal" and gpu == asitop.parse_gpu_metrics(_both(M1)[0][0])
