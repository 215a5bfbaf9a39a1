"""nvml against a faithful fake `pynvml` (same function names, constants, error classes and
ctypes return types as nvidia-ml-py), injected through sys.modules."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import logging
import string
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from cnnprof.profiler.telemetry.base import SourceConfig
from cnnprof.profiler.telemetry.nvml import NvmlSource
from cnnprof.traces.nvml_codes import decode_clock_event_reasons

# -- the fake ------------------------------------------------------------------------------------
CONSTANTS = {
    "NVML_SUCCESS": 0,
    "NVML_ERROR_UNINITIALIZED": 1,
    "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_ERROR_NO_PERMISSION": 4,
    "NVML_ERROR_NOT_FOUND": 6,
    "NVML_ERROR_DRIVER_NOT_LOADED": 9,
    "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
    "NVML_ERROR_GPU_IS_LOST": 15,
    "NVML_CLOCK_SM": 1,
    "NVML_CLOCK_MEM": 2,
    "NVML_TEMPERATURE_GPU": 0,
    "NVML_TOTAL_POWER_SAMPLES": 0,
    "NVML_FI_DEV_POWER_AVERAGE": 185,
    "NVML_FI_DEV_POWER_INSTANT": 186,
    "NVML_VALUE_TYPE_DOUBLE": 0,
    "NVML_VALUE_TYPE_UNSIGNED_INT": 1,
    "NVML_VALUE_TYPE_UNSIGNED_LONG": 2,
    "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG": 3,
    "NVML_VALUE_TYPE_SIGNED_LONG_LONG": 4,
    "NVML_VALUE_TYPE_SIGNED_INT": 5,
    "NVML_VALUE_TYPE_UNSIGNED_SHORT": 6,
}
ERROR_TEXT = {
    3: "Not Supported",
    4: "Insufficient Permissions",
    6: "Not Found",
    9: "Driver Not Loaded",
    12: "NVML Shared Library Not Found",
    15: "GPU is lost",
}


class c_nvmlValue_t(ctypes.Union):
    _fields_ = [
        ("dVal", ctypes.c_double),
        ("uiVal", ctypes.c_uint),
        ("ulVal", ctypes.c_ulong),
        ("ullVal", ctypes.c_ulonglong),
        ("sllVal", ctypes.c_longlong),
        ("siVal", ctypes.c_int),
        ("usVal", ctypes.c_ushort),
    ]


class c_nvmlSample_t(ctypes.Structure):
    _fields_ = [("timeStamp", ctypes.c_ulonglong), ("sampleValue", c_nvmlValue_t)]


class c_nvmlFieldValue_t(ctypes.Structure):
    _fields_ = [
        ("fieldId", ctypes.c_uint32),
        ("scopeId", ctypes.c_uint32),
        ("timestamp", ctypes.c_int64),
        ("latencyUsec", ctypes.c_int64),
        ("valueType", ctypes.c_uint),
        ("nvmlReturn", ctypes.c_uint),
        ("value", c_nvmlValue_t),
    ]


class c_nvmlUtilization_t(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class c_nvmlMemory_t(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class NVMLError(Exception):
    """Like pynvml's: NVMLError(code) builds the subclass for that code (NVMLError_NotSupported...)."""

    _valClassMapping: dict[int, type] = {}

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return ERROR_TEXT.get(self.value, f"NVML Error with code {self.value}")


@dataclass
class FakeGpu:
    sm_mhz: int = 1410
    mem_mhz: int = 2619
    util: tuple[int, int] = (87, 35)
    power_usage_mw: int = 310_000  # nvmlDeviceGetPowerUsage: the 1 s average on Hopper
    instant_mw: int = 402_500
    average_mw: int = 305_250
    energy_mj: int = 123_456_789
    temp_c: int = 61
    mem_used: int = 12 * 2**30
    reasons: int = 0x4 | 0x40
    samples: list[tuple[int, int]] = field(default_factory=list)  # (CPU wall-clock us, mW)
    unsupported: set[str] = field(default_factory=set)  # function or field names that say NotSupported
    calls: dict[str, int] = field(default_factory=dict)


def make_fake_pynvml(gpus: list[FakeGpu], init_error: int | None = None) -> types.ModuleType:
    nv = types.ModuleType("pynvml")
    nv.__dict__.update(CONSTANTS)
    nv.NVMLError = NVMLError
    for constant, code in CONSTANTS.items():
        if constant.startswith("NVML_ERROR_"):  # the real binding's naming: NVMLError_NotFound, ...
            name = "NVMLError_" + string.capwords(constant.removeprefix("NVML_ERROR_"), "_").replace("_", "")
            NVMLError._valClassMapping[code] = type(name, (NVMLError,), {})
            setattr(nv, name, NVMLError._valClassMapping[code])
    nv.c_nvmlSample_t, nv.c_nvmlFieldValue_t, nv.c_nvmlValue_t = (
        c_nvmlSample_t,
        c_nvmlFieldValue_t,
        c_nvmlValue_t,
    )

    def call(name: str, handle: FakeGpu) -> FakeGpu:
        handle.calls[name] = handle.calls.get(name, 0) + 1
        if name in handle.unsupported:
            raise NVMLError(CONSTANTS["NVML_ERROR_NOT_SUPPORTED"])
        return handle

    def nvmlInit() -> None:
        if init_error is not None:
            raise NVMLError(init_error)

    def nvmlDeviceGetClockInfo(handle: FakeGpu, type: int) -> int:
        gpu = call("nvmlDeviceGetClockInfo", handle)
        return gpu.sm_mhz if type == CONSTANTS["NVML_CLOCK_SM"] else gpu.mem_mhz

    def nvmlDeviceGetUtilizationRates(handle: FakeGpu) -> c_nvmlUtilization_t:
        return c_nvmlUtilization_t(*call("nvmlDeviceGetUtilizationRates", handle).util)

    def nvmlDeviceGetFieldValues(handle: FakeGpu, fieldIds: list[int]) -> Any:
        gpu = call("nvmlDeviceGetFieldValues", handle)
        values = (c_nvmlFieldValue_t * len(fieldIds))()
        for value, field_id in zip(values, fieldIds, strict=True):
            value.fieldId = field_id
            name = {185: "POWER_AVERAGE", 186: "POWER_INSTANT"}.get(field_id)
            if name is None or name in gpu.unsupported:
                value.nvmlReturn = CONSTANTS["NVML_ERROR_NOT_SUPPORTED"]
                continue
            value.valueType = CONSTANTS["NVML_VALUE_TYPE_UNSIGNED_INT"]
            value.value.uiVal = gpu.instant_mw if field_id == 186 else gpu.average_mw
        return values

    def nvmlDeviceGetSamples(device: FakeGpu, sampling_type: int, timeStamp: int) -> tuple[int, list]:
        gpu = call("nvmlDeviceGetSamples", device)
        newer = [(ts, mw) for ts, mw in gpu.samples if ts > timeStamp]
        if not newer:
            raise NVMLError(CONSTANTS["NVML_ERROR_NOT_FOUND"])
        out = (c_nvmlSample_t * len(newer))()
        for sample, (ts, mw) in zip(out, newer, strict=True):
            sample.timeStamp = ts
            sample.sampleValue.uiVal = mw
        return CONSTANTS["NVML_VALUE_TYPE_UNSIGNED_INT"], out[0 : len(newer)]

    def nvmlDeviceGetMemoryInfo(handle: FakeGpu, version: Any = None) -> c_nvmlMemory_t:
        gpu = call("nvmlDeviceGetMemoryInfo", handle)
        return c_nvmlMemory_t(80 * 2**30, 80 * 2**30 - gpu.mem_used, gpu.mem_used)

    functions = {
        "nvmlInit": nvmlInit,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: len(gpus),
        "nvmlDeviceGetHandleByIndex": lambda index: gpus[index],
        "nvmlDeviceGetClockInfo": nvmlDeviceGetClockInfo,
        "nvmlDeviceGetUtilizationRates": nvmlDeviceGetUtilizationRates,
        "nvmlDeviceGetPowerUsage": lambda handle: call("nvmlDeviceGetPowerUsage", handle).power_usage_mw,
        "nvmlDeviceGetFieldValues": nvmlDeviceGetFieldValues,
        "nvmlDeviceGetTotalEnergyConsumption": lambda handle: (
            call("nvmlDeviceGetTotalEnergyConsumption", handle).energy_mj
        ),
        "nvmlDeviceGetSamples": nvmlDeviceGetSamples,
        "nvmlDeviceGetTemperature": lambda handle, sensor: call("nvmlDeviceGetTemperature", handle).temp_c,
        "nvmlDeviceGetMemoryInfo": nvmlDeviceGetMemoryInfo,
        "nvmlDeviceGetCurrentClocksEventReasons": lambda handle: (
            call("nvmlDeviceGetCurrentClocksEventReasons", handle).reasons
        ),
    }
    nv.__dict__.update(functions)
    nv.FUNCTIONS = sorted(functions)
    return nv


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch):
    def install(gpus: list[FakeGpu], init_error: int | None = None) -> types.ModuleType:
        module = make_fake_pynvml(gpus, init_error)
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module

    return install


def probed(gpus: list[FakeGpu], fake_nvml: Any) -> NvmlSource:
    fake_nvml(gpus)
    source = NvmlSource(SourceConfig(interval_ms=100, target_pid=1))
    status = source.probe()
    assert status.ok, status
    return source


def by_metric(rows: list[tuple[int, str, float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for _, metric, value in rows:
        out.setdefault(metric, []).append(value)
    return out


# -- the fake is faithful -------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="nvidia-ml-py not installed")
def test_fake_matches_the_real_binding() -> None:
    import pynvml as real

    fake = make_fake_pynvml([])
    for name in fake.FUNCTIONS:
        assert callable(getattr(real, name)), name
    for name, value in CONSTANTS.items():
        assert getattr(real, name) == value, name
    for name in ("c_nvmlSample_t", "c_nvmlFieldValue_t", "c_nvmlValue_t"):
        assert [f[0] for f in getattr(real, name)._fields_] == [f[0] for f in getattr(fake, name)._fields_]
    for code in (3, 6, 12):
        assert type(real.NVMLError(code)).__name__ == type(fake.NVMLError(code)).__name__


# -- readings ----------------------------------------------------------------------------------
def test_one_gpu_plain_names_and_unit_conversions(fake_nvml: Any) -> None:
    source = probed([FakeGpu()], fake_nvml)
    assert set(source.metrics) == {
        "sm_clock_mhz",
        "mem_clock_mhz",
        "gpu_util_pct",
        "mem_util_pct",
        "temp_c",
        "mem_used_mb",
        "clock_event_reasons",
        "power_w",
        "power_avg_w",
        "energy_j",
    }
    values = by_metric(source.read(time.perf_counter_ns()))
    assert values["sm_clock_mhz"] == [1410] and values["mem_clock_mhz"] == [2619]
    assert values["gpu_util_pct"] == [87] and values["mem_util_pct"] == [35]
    assert values["power_w"] == [402.5]  # the instant field, mW -> W
    assert values["power_avg_w"] == [305.25]  # the average field
    assert values["mem_used_mb"] == [12 * 1024]
    assert values["temp_c"] == [61]
    assert decode_clock_event_reasons(values["clock_event_reasons"][0]) == [
        "SW power cap",
        "HW thermal slowdown",
    ]
    assert values["energy_j"] == [0.0]
    source.close()


def test_energy_relative_to_start_and_read_at_most_once_a_second(fake_nvml: Any) -> None:
    gpu = FakeGpu()
    source = probed([gpu], fake_nvml)
    t0 = time.perf_counter_ns()
    calls = gpu.calls["nvmlDeviceGetTotalEnergyConsumption"]
    assert by_metric(source.read(t0))["energy_j"] == [0.0]
    gpu.energy_mj += 4_250
    assert "energy_j" not in by_metric(source.read(t0 + 500_000_000))  # under a second: not read
    assert gpu.calls["nvmlDeviceGetTotalEnergyConsumption"] == calls + 1
    later = time.perf_counter_ns() + 1_000_000_000
    assert by_metric(source.read(later))["energy_j"] == [4.25]
    gpu.energy_mj += 750
    assert by_metric(source.read(later + 1_000_000, final=True))["energy_j"] == [5.0]  # the end: always


def test_buffered_power_samples_are_drained_once_each(fake_nvml: Any) -> None:
    now_us = time.time_ns() // 1000
    gpu = FakeGpu(samples=[(now_us - 60_000, 111_000), (now_us - 40_000, 112_000)])  # before the run
    source = probed([gpu], fake_nvml)
    first = source.read(time.perf_counter_ns())
    assert [v for _, m, v in first if m == "power_w"] == [402.5]  # the instant read only: old samples dropped
    fresh = [(now_us + 20_000 * i, 200_000 + i * 1000) for i in range(1, 6)]
    gpu.samples += fresh
    perf_before, wall_before = time.perf_counter_ns(), time.time_ns()
    rows = source.read(time.perf_counter_ns())
    sampled = sorted((t, v) for t, m, v in rows if m == "power_w" and v != 402.5)
    assert [v for _, v in sampled] == [201.0, 202.0, 203.0, 204.0, 205.0]
    # Wall-clock microseconds moved onto the perf_counter clock: 20 ms apart, where they belong.
    assert [b - a for (a, _), (b, _) in zip(sampled, sampled[1:], strict=False)] == [20_000_000] * 4
    expected_first = perf_before + (fresh[0][0] * 1000 - wall_before)
    assert abs(sampled[0][0] - expected_first) < 5_000_000
    again = source.read(time.perf_counter_ns())
    assert [v for _, m, v in again if m == "power_w"] == [402.5]  # nothing drained twice (NotFound: quiet)


def test_not_supported_readings_are_left_out(fake_nvml: Any) -> None:
    gpu = FakeGpu(
        unsupported={
            "nvmlDeviceGetTemperature",
            "POWER_INSTANT",
            "POWER_AVERAGE",
            "nvmlDeviceGetSamples",
            "nvmlDeviceGetTotalEnergyConsumption",
        }
    )
    fake_nvml([gpu])
    source = NvmlSource(SourceConfig(100, 1))
    status = source.probe()
    assert status.ok and "temp_c (Not Supported)" in status.reason
    assert "temp_c" not in source.metrics and "energy_j" not in source.metrics
    assert "power_avg_w" not in source.metrics  # PowerUsage is taken as power_w here, not twice
    values = by_metric(source.read(time.perf_counter_ns()))
    assert values["power_w"] == [310.0]  # fallback: nvmlDeviceGetPowerUsage
    assert "temp_c" not in values and "energy_j" not in values


def test_instant_without_average_field_takes_power_usage_as_average(fake_nvml: Any) -> None:
    source = probed([FakeGpu(unsupported={"POWER_AVERAGE"})], fake_nvml)
    values = by_metric(source.read(time.perf_counter_ns()))
    assert values["power_w"] == [402.5] and values["power_avg_w"] == [310.0]


def test_several_gpus_are_prefixed(fake_nvml: Any) -> None:
    source = probed([FakeGpu(sm_mhz=1000), FakeGpu(sm_mhz=1200)], fake_nvml)
    values = by_metric(source.read(time.perf_counter_ns()))
    assert values["gpu0.sm_clock_mhz"] == [1000] and values["gpu1.sm_clock_mhz"] == [1200]
    assert "sm_clock_mhz" not in values and "gpu1.energy_j" in source.metrics


def test_failure_mid_run_skips_the_reading_and_warns_once(fake_nvml: Any, caplog: pytest.LogCaptureFixture) -> None:
    gpu = FakeGpu()
    source = probed([gpu], fake_nvml)
    gpu.unsupported.add("nvmlDeviceGetClockInfo")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            values = by_metric(source.read(time.perf_counter_ns()))
    assert "sm_clock_mhz" not in values and values["temp_c"] == [61]
    assert sum("sm_clock_mhz failed" in r.message for r in caplog.records) == 1


# -- unavailable ----------------------------------------------------------------------------
def test_no_driver_library_is_unavailable_with_reason(fake_nvml: Any) -> None:
    fake_nvml([FakeGpu()], init_error=CONSTANTS["NVML_ERROR_LIBRARY_NOT_FOUND"])
    status = NvmlSource(SourceConfig(100, 1)).probe()
    assert not status.ok and "libnvidia-ml not found" in status.reason and status.fix


def test_no_gpu_is_unavailable(fake_nvml: Any) -> None:
    fake_nvml([])
    status = NvmlSource(SourceConfig(100, 1)).probe()
    assert not status.ok and "no NVIDIA GPU" in status.reason


def test_binding_not_installed_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    status = NvmlSource(SourceConfig(100, 1)).probe()
    assert not status.ok and status.fix == "pip install nvidia-ml-py"


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="nvidia-ml-py not installed")
def test_real_binding_without_a_driver() -> None:
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("this machine has an NVIDIA driver")
    status = NvmlSource(SourceConfig(100, 1)).probe()
    assert not status.ok and "libnvidia-ml not found" in status.reason


def test_decode_clock_event_reasons() -> None:
    assert decode_clock_event_reasons(0) == []
    assert decode_clock_event_reasons(0x1) == ["GPU idle"]
    assert decode_clock_event_reasons(float(0x8 | 0x80)) == ["HW slowdown", "HW power brake slowdown"]
    assert decode_clock_event_reasons(0x1000 | 0x4) == ["SW power cap", "unknown (0x1000)"]
