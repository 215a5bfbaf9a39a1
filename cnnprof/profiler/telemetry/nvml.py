"""NVIDIA GPUs through NVML (`pynvml`, package nvidia-ml-py, imported only when probed).

Per GPU, prefixed `gpu<i>.` only when there are several: SM and memory clock, utilisation,
instant and 1 s average power, the driver's buffered 20 ms power samples, the energy counter,
temperature, memory used and the clock-event (throttle) reasons. Costs on an H100
(docs/BENCHMARKS.md, "NVML on the H100"): every call here is ~2 us except `nvmlDeviceGetTotalEnergyConsumption`
(~4 ms), which is therefore read at the first cycle, at most once a second, and at the end.

Every reading is tried once at probe time; one that fails (NotSupported, NotFound, no permission)
is left out of the metric list rather than failing the source.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import MetricTable, Reading, Source, SourceConfig, SourceStatus, unavailable

log = logging.getLogger(__name__)

MIB = 2**20
ENERGY_PERIOD_NS = 1_000_000_000

DESCRIPTIONS: MetricTable = {
    "sm_clock_mhz": ("MHz", "SM clock"),
    "mem_clock_mhz": ("MHz", "memory clock"),
    "gpu_util_pct": ("%", "share of time a kernel ran (driver sample period ~200 ms)"),
    "mem_util_pct": ("%", "share of time device memory was read or written"),
    "power_w": (
        "W",
        "board power, instantaneous: each cycle's POWER_INSTANT field (else nvmlDeviceGetPowerUsage) "
        "plus the driver's buffered 20 ms samples",
    ),
    "power_avg_w": ("W", "board power, 1 s average"),
    "energy_j": ("J", "energy counter since the sampler started (read at most once a second)"),
    "temp_c": ("degC", "GPU temperature"),
    "mem_used_mb": ("MiB", "device memory used"),
    "clock_event_reasons": ("bitmask", "why clocks are held down (decode_clock_event_reasons)"),
}

# A group of metrics read by one call: (metric names, reader(handle) -> one value per name).
Group = tuple[tuple[str, ...], Callable[[Any], tuple[float, ...]]]


@dataclass
class _Gpu:
    handle: Any
    prefix: str
    groups: list[Group] = field(default_factory=list)
    samples: bool = False
    last_sample_us: int = 0
    energy: bool = False
    energy_start_mj: int | None = None
    last_energy_ns: int = 0
    failures: set[str] = field(default_factory=set)


class NvmlSource(Source):
    name = "nvml"

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self._nv: Any = None
        self._gpus: list[_Gpu] = []
        self._initialised = False
        # NVML stamps buffered samples with CPU wall-clock microseconds: this maps them onto the
        # run's clock. Measured once, at probe time.
        self._wall_to_perf_ns = 0

    # -- probe ---------------------------------------------------------------------------------
    def probe(self) -> SourceStatus:
        try:
            nv = self._nv = importlib.import_module("pynvml")
        except ImportError:
            return unavailable("nvidia-ml-py is not installed", "pip install nvidia-ml-py")
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            return unavailable(_init_reason(nv, exc), "install the NVIDIA driver, or leave nvml out")
        self._initialised = True
        try:
            count = nv.nvmlDeviceGetCount()
        except nv.NVMLError as exc:
            return unavailable(f"NVML cannot count GPUs: {exc}")
        if count == 0:
            return unavailable("NVML found no NVIDIA GPU")
        self._wall_to_perf_ns = time.perf_counter_ns() - time.time_ns()
        dropped: list[str] = []
        for index in range(count):
            prefix = f"gpu{index}." if count > 1 else ""
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(index)
            except nv.NVMLError as exc:
                dropped.append(f"{prefix or 'gpu0.'}* ({exc})")
                continue
            gpu = _Gpu(handle, prefix)
            self._probe_gpu(gpu, dropped)
            self._gpus.append(gpu)
        if not self.metrics:
            return unavailable("no NVML reading works here: " + "; ".join(dropped))
        return SourceStatus(True, "left out: " + ", ".join(dropped) if dropped else "")

    def _probe_gpu(self, gpu: _Gpu, dropped: list[str]) -> None:
        nv = self._nv
        for names, reader in self._candidate_groups(gpu.handle):
            try:
                reader(gpu.handle)
            except nv.NVMLError as exc:
                dropped += [f"{gpu.prefix}{n} ({exc})" for n in names]
                continue
            gpu.groups.append((names, reader))
            self._declare(gpu.prefix, names)
        try:
            _, samples = nv.nvmlDeviceGetSamples(gpu.handle, nv.NVML_TOTAL_POWER_SAMPLES, 0)
            # Start after what the driver buffered before the run.
            gpu.last_sample_us = max((s.timeStamp for s in samples), default=time.time_ns() // 1000)
            gpu.samples = True
        except nv.NVMLError as exc:
            if _is(nv, exc, "NVML_ERROR_NOT_FOUND"):  # supported, just nothing buffered yet
                gpu.last_sample_us, gpu.samples = time.time_ns() // 1000, True
            else:
                dropped.append(f"{gpu.prefix}power samples ({exc})")
        if gpu.samples:
            self._declare(gpu.prefix, ("power_w",))
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)
            gpu.energy = True
            self._declare(gpu.prefix, ("energy_j",))
        except nv.NVMLError as exc:
            dropped.append(f"{gpu.prefix}energy_j ({exc})")

    def _declare(self, prefix: str, names: tuple[str, ...]) -> None:
        for name in names:
            self.metrics[prefix + name] = DESCRIPTIONS[name]

    def _candidate_groups(self, handle: Any) -> list[Group]:
        nv = self._nv
        groups: list[Group] = [
            (("sm_clock_mhz",), lambda h: (nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),)),
            (("mem_clock_mhz",), lambda h: (nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),)),
            (("gpu_util_pct", "mem_util_pct"), _utilization(nv)),
            (("temp_c",), lambda h: (nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),)),
            (("mem_used_mb",), lambda h: (nv.nvmlDeviceGetMemoryInfo(h).used / MIB,)),
        ]
        # The clock-event call is the throttle-reasons call renamed; older bindings have only that.
        reasons = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if reasons is None:
            reasons = nv.nvmlDeviceGetCurrentClocksThrottleReasons
        groups.append((("clock_event_reasons",), lambda h: (reasons(h),)))
        return groups + self._power_groups(handle)

    def _power_groups(self, handle: Any) -> list[Group]:
        """power_w from the instant field where the driver has it, else from nvmlDeviceGetPowerUsage
        (instantaneous before Ampere); power_avg_w from the average field, else from PowerUsage
        where that is the 1 s average (i.e. where the instant field exists)."""
        nv = self._nv
        ids = [getattr(nv, "NVML_FI_DEV_POWER_INSTANT", None), getattr(nv, "NVML_FI_DEV_POWER_AVERAGE", None)]
        try:
            instant, average = _field_values(nv, handle, ids)
        except nv.NVMLError:
            instant = average = None

        def usage(h: Any) -> tuple[float, ...]:
            return (nv.nvmlDeviceGetPowerUsage(h) / 1000.0,)

        groups: list[Group] = []
        if instant is not None and average is not None:
            groups.append((("power_w", "power_avg_w"), _fields_w(nv, ids)))
        elif instant is not None:
            groups += [(("power_w",), _fields_w(nv, ids[:1])), (("power_avg_w",), usage)]
        else:
            groups.append((("power_w",), usage))
            if average is not None:
                groups.append((("power_avg_w",), _fields_w(nv, ids[1:])))
        return groups

    # -- read ----------------------------------------------------------------------------------
    def read(self, now_ns: int, final: bool = False) -> list[Reading]:
        nv = self._nv
        rows: list[Reading] = []
        for gpu in self._gpus:
            for names, reader in gpu.groups:
                try:
                    values = reader(gpu.handle)
                except nv.NVMLError as exc:
                    self._failed(gpu, names[0], exc)
                    continue
                rows += [(now_ns, gpu.prefix + n, float(v)) for n, v in zip(names, values, strict=True)]
            if gpu.samples:
                rows += self._drain_samples(gpu)
            due = gpu.energy_start_mj is None or now_ns - gpu.last_energy_ns >= ENERGY_PERIOD_NS
            if gpu.energy and (due or final):
                rows += self._read_energy(gpu)
        return rows

    def _drain_samples(self, gpu: _Gpu) -> list[Reading]:
        nv = self._nv
        try:
            value_type, samples = nv.nvmlDeviceGetSamples(gpu.handle, nv.NVML_TOTAL_POWER_SAMPLES, gpu.last_sample_us)
        except nv.NVMLError as exc:
            if not _is(nv, exc, "NVML_ERROR_NOT_FOUND"):  # NotFound: no sample since the last one
                self._failed(gpu, "power samples", exc)
            return []
        attr = _value_attr(nv, value_type)
        rows: list[Reading] = []
        for sample in samples:
            if sample.timeStamp <= gpu.last_sample_us:
                continue
            t_ns = sample.timeStamp * 1000 + self._wall_to_perf_ns
            rows.append((t_ns, gpu.prefix + "power_w", getattr(sample.sampleValue, attr) / 1000.0))
        gpu.last_sample_us = max([gpu.last_sample_us] + [s.timeStamp for s in samples])
        return rows

    def _read_energy(self, gpu: _Gpu) -> list[Reading]:
        nv = self._nv
        before = time.perf_counter_ns()
        try:
            mj = nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)
        except nv.NVMLError as exc:
            self._failed(gpu, "energy_j", exc)
            return []
        after = time.perf_counter_ns()
        if gpu.energy_start_mj is None:
            gpu.energy_start_mj = mj
        gpu.last_energy_ns = after
        # The call takes ~4 ms: its midpoint is the best guess of when the counter was read.
        return [((before + after) // 2, gpu.prefix + "energy_j", (mj - gpu.energy_start_mj) / 1000.0)]

    def _failed(self, gpu: _Gpu, what: str, exc: Exception) -> None:
        # A reading that worked at probe time and fails now (GPU lost, driver reset) is skipped for
        # this cycle; said once per reading so the log stays short.
        if what not in gpu.failures:
            gpu.failures.add(what)
            log.warning("nvml %s%s failed: %s", gpu.prefix, what, exc)

    def close(self) -> None:
        if self._initialised:
            self._initialised = False
            with contextlib.suppress(self._nv.NVMLError):  # shutting down anyway
                self._nv.nvmlShutdown()


def _is(nv: Any, exc: Exception, constant: str) -> bool:
    return getattr(exc, "value", None) == getattr(nv, constant, object())


def _init_reason(nv: Any, exc: Exception) -> str:
    if _is(nv, exc, "NVML_ERROR_LIBRARY_NOT_FOUND"):
        return "no NVIDIA driver here (libnvidia-ml not found)"
    if _is(nv, exc, "NVML_ERROR_DRIVER_NOT_LOADED"):
        return "the NVIDIA driver is not loaded"
    return f"NVML failed to start: {exc}"


def _value_attr(nv: Any, value_type: int) -> str:
    """The member of the nvmlValue_t union that holds a value of `value_type`."""
    return {
        nv.NVML_VALUE_TYPE_DOUBLE: "dVal",
        nv.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        nv.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        nv.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        nv.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_SHORT", 6): "usVal",
    }.get(value_type, "uiVal")


def _field_values(nv: Any, handle: Any, ids: list[int | None]) -> list[float | None]:
    """Values of NVML fields (None where the binding lacks the id or the driver the field)."""
    wanted = [i for i in ids if i is not None]
    got = nv.nvmlDeviceGetFieldValues(handle, wanted) if wanted else []
    by_id = {
        v.fieldId: float(getattr(v.value, _value_attr(nv, v.valueType))) for v in got if v.nvmlReturn == nv.NVML_SUCCESS
    }
    return [by_id.get(i) if i is not None else None for i in ids]


def _fields_w(nv: Any, ids: list[int | None]) -> Callable[[Any], tuple[float, ...]]:
    """A reader of mW fields in W; a field that stops answering raises like any NVML call."""

    def read(handle: Any) -> tuple[float, ...]:
        values = _field_values(nv, handle, ids)
        if any(v is None for v in values):
            raise nv.NVMLError(nv.NVML_ERROR_NOT_SUPPORTED)
        return tuple(v / 1000.0 for v in values)  # type: ignore[operator]

    return read


def _utilization(nv: Any) -> Callable[[Any], tuple[float, ...]]:
    def read(handle: Any) -> tuple[float, ...]:
        rates = nv.nvmlDeviceGetUtilizationRates(handle)
        return (rates.gpu, rates.memory)

    return read
