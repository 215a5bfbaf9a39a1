"""Diagnosis: rules over a run directory's spans, stack samples and telemetry that name the
bottlenecks of a run, each as a `Finding` (id, severity, claim, evidence, fix, call sites).

Rules (DESIGN.md, "Diagnosis"):

* `sync-bound`: blocking host-device syncs take a large share of the training time, split into
  *device-bound* (the GPU was busy while the host waited) and *serialisation* (the GPU idled around
  the syncs) by GPU utilisation telemetry; without it the finding says it can't tell. Syncs on the
  CPU device cost nothing (there is no device to wait for), so they never make a `sync-bound`
  finding, however many there are; on a CPU run their call sites go into an `info` finding
  `sync-sites` (the lines that would stall a GPU run). Frequent device syncs below the
  sync-bound share (a GPU fast enough to keep up) make the same `info` finding.
* `input-bound`: fetching batches (`data` spans; or stack samples in `__getitem__`, collate,
  `torch.utils.data`, and host-to-device copies on a GPU run) takes a large share.
* `device-idle`: GPU utilisation / active residency low during the training phases.
* `lazy-graph` (MLX): few evaluations, each very long (the graph spans many batches).
* `warmup`: the first step (or epoch) much slower than the steady state.
* `throttling`: thermal pressure above Nominal, or NVML clock-event reasons thermal / power cap.

The rules read only the run directory (no torch, no mlx): a report can be rebuilt anywhere.

Sync spans carry their device in `attrs` (`{"device": "cuda"}`, written by the sync hooks); spans
without it (the loops' own coarse sync phase, hooks off) take the run's backend device. Where a
sync was not hooked, long stack samples whose leaf is a torch C sync method (`Tensor.item`, ...)
and that overlap no hooked span are counted too. That needs C functions as stack leaves, which
only `--profiler pyinstrument` records (the default sampler sees Python frames only, so an
unhooked sync is time on its calling line there), and works for torch only (nanobind functions
such as `mx.eval` produce no C-call profiler events; see profiler/sync.py). The same holds for
naming a host-to-device copy (`Tensor.to`) as input work from the samples alone.

`CallSite.count` is the number of calls for span-based sites and the number of stack samples for
sample-based ones (the evidence says which).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..traces import nvml_codes
from ..traces.reader import RunData
from .findings import SEVERITIES, CallSite, Finding

# -- thresholds --------------------------------------------------------------------------------

# A fifth of the training time blocked in syncs is worth acting on: removing per-batch syncs from
# the seed loop is a one-line change, and below this share the other costs usually dominate.
SYNC_BOUND_SHARE = 0.20
# Half the time or more: the sync wait is *the* bottleneck.
SYNC_HIGH_SHARE = 0.50
# Below SYNC_BOUND_SHARE, this many device syncs in the window (a per-step sync over a few hundred
# steps; the tuned loop's once-per-epoch reads stay far below) are still named, as info: a GPU
# that keeps up hides them (the H100 on the seed loop: 1,060 .item() calls, 0.3 s), a slower one
# does not (the study's mps: 41 s).
SYNC_SITES_MIN_CALLS = 100
# GPU utilisation (NVML: % of time a kernel ran; powermetrics: active residency) at or above
# which the device counts as busy during a sync: the host waited for real work (device-bound).
# NVML's figure is coarse (averaged over 1/6 s to 1 s, longer than most syncs), so in practice it
# reads the GPU's busy share *around* the syncs; the line is set well above half. Checked by hand on
# an H100 with NVML polled at 50 Hz: a loop that only waits on back-to-back matmuls came out
# device-bound; one where ~8 ms of host work and ~8 ms of GPU work take turns (GPU ~50 % busy over
# the run) came out serialisation.
SYNC_DEVICE_BUSY_PCT = 60.0

# A quarter of the time in the input pipeline means the device waits that long every step
# unless loading overlaps with compute (which in-process loading does not).
INPUT_BOUND_SHARE = 0.25
INPUT_HIGH_SHARE = 0.50
# A site is named in the claim when it holds at least a tenth of the sampled input time.
INPUT_NAME_SHARE = 0.10

# Mean GPU utilisation below half during training: the GPU waits for the host more than it works.
DEVICE_IDLE_PCT = 50.0
# Below a fifth it is mostly idle: severity high.
DEVICE_IDLE_HIGH_PCT = 20.0

# An MLX eval of half a second or more is far longer than one step of the seed CNN at batch 512
# on any Apple GPU (tens of ms), so it holds a graph of many steps.
LAZY_EVAL_MIN_S = 0.5
# Fewer than one eval per four training batches: the graph spans several batches.
LAZY_EVALS_PER_BATCH = 0.25
LAZY_MIN_BATCHES = 4

# First step at least 5x the steady-state median, and at least a quarter second more (so a 2 ms
# vs 0.3 ms first step on a tiny model is not a finding).
WARMUP_RATIO = 5.0
WARMUP_MIN_EXCESS_S = 0.25
WARMUP_MIN_STEPS = 5
# First epoch 1.5x the median of the others (needs >= 3 epochs).
WARMUP_EPOCH_RATIO = 1.5
# Warm-up that costs more than a tenth of the training time matters for the figures: medium.
WARMUP_MEDIUM_SHARE = 0.10

# Throttled in at least 5% of telemetry samples: more than a momentary spike.
THROTTLE_SHARE = 0.05

# Call sites listed per finding.
TOP_SITES = 10

THERMAL_LEVELS = ("Nominal", "Moderate", "Heavy", "Trapping", "Sleeping")

GPU_DEVICES = ("cuda", "mps", "gpu")
CPU_DEVICE = "cpu"

# Torch C methods that block on the device, as stack-sample leaves (`<built-in>` frames are named
# by their __qualname__: "TensorBase.item" when called unbound, "Tensor.item" / "Parameter.item"
# when called on an instance) -> the sync kind the hooks would have recorded.
_SAMPLE_SYNC_METHODS = {
    "item": "Tensor.item",
    "tolist": "Tensor.tolist",
    "cpu": "Tensor.cpu",
    "numpy": "Tensor.numpy",
}
_SAMPLE_SYNC_FUNCTIONS = {
    "_cuda_synchronize": "torch.cuda.synchronize",
    "_mps_synchronize": "torch.mps.synchronize",
    # never seen as leaves under Python 3.11 (nanobind), kept in case a later Python reports them
    "eval": "mx.eval",
    "array.item": "array.item",
    "array.tolist": "array.tolist",
}
# Host-to-device copies, as stack-sample leaves (only input work on a GPU run).
_H2D_METHODS = ("to", "cuda", "copy_", "pin_memory")

_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


# -- the run, prepared once for all rules ----------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    function: str
    file: str
    line: int
    first_line: int
    library: bool

    @property
    def short_name(self) -> str:
        return self.function.rsplit(".", 1)[-1]


def _norm(path: str) -> str:
    return path.replace("\\", "/")


class _Context:
    def __init__(self, run: RunData) -> None:
        self.run = run
        meta = run.meta
        backend = meta.get("backend") or {}
        self.backend_name: str = backend.get("name") or (meta.get("config") or {}).get("backend") or ""
        self.framework: str = backend.get("framework") or _framework_of(self.backend_name)
        self.device: str | None = backend.get("device") or _device_of(self.backend_name)
        self.config: dict[str, Any] = meta.get("config") or {}

        spans = run.spans
        if spans.empty:
            spans = pd.DataFrame(columns=["kind", "name", "start_ns", "end_ns", "caller", "attrs"])
        spans = spans.copy()
        spans["start_ns"] = spans["start_ns"].astype("int64")
        spans["end_ns"] = spans["end_ns"].astype("int64")
        spans["dur_s"] = (spans["end_ns"] - spans["start_ns"]) / 1e9
        self.spans = spans

        syncs = spans[spans["kind"] == "sync"].copy()
        syncs["device"] = [_attrs_device(a) or self.device or "unknown" for a in syncs["attrs"].tolist()]
        self.syncs = syncs

        self.duration_ns = int(meta.get("duration_ns") or run.duration_ns or 0)
        self.window = self._window()
        self.telemetry = run.telemetry
        self.samples = _Samples(run)
        # For scripts (no phase spans) leave import time out of the denominator.
        self.import_s = 0.0
        if self.window_label == "the run":
            self.import_s = self.samples.seconds_where(self.samples.stack_is_import, self.window)
        self.window_s = max(_total_s(self.window) - self.import_s, 1e-9)

    def _window(self) -> np.ndarray:
        spans = self.spans
        for kinds, label in (
            (("epoch",), "training time (epochs)"),
            (("train", "validation", "test", "single"), "time in training and inference phases"),
        ):
            sel = spans[spans["kind"].isin(kinds)]
            if not sel.empty:
                self.window_label = label
                return _merge(sel[["start_ns", "end_ns"]].to_numpy(dtype=np.int64))
        self.window_label = "the run"
        end = self.duration_ns or (int(spans["end_ns"].max()) if not spans.empty else 0)
        if not end and not self.run.samples.empty:
            s = self.run.samples
            end = int((s["t_ns"] + s["dt_ns"]).max())
        return np.array([[0, end]], dtype=np.int64)

    @property
    def window_text(self) -> str:
        text = f"{self.window_s:.2f} s of {self.window_label}"
        if self.import_s > 0:
            text += f", not counting {self.import_s:.2f} s of imports"
        return text

    @property
    def uses_gpu(self) -> bool:
        if self.device in GPU_DEVICES:
            return True
        return bool(self.syncs["device"].isin(GPU_DEVICES).any())

    def gpu_util(self) -> _Series | None:
        return _gpu_util(self.telemetry)


class _Samples:
    """The stack samples with per-stack facts computed once per unique stack."""

    def __init__(self, run: RunData) -> None:
        samples = run.samples
        stacks = run.stacks
        self.frames = [
            _Frame(
                str(f.get("function", "?")),
                str(f.get("file", "")),
                int(f.get("line") or 0),
                int(f.get("first_line") or f.get("line") or 0),
                bool(f.get("library", False)),
            )
            for f in stacks.get("frames", [])
        ]
        self.stacks: list[list[int]] = [list(s) for s in stacks.get("stacks", [])]
        if samples.empty or not self.stacks:
            self.t = np.zeros(0, dtype=np.int64)
            self.dt = np.zeros(0, dtype=np.int64)
            self.sid = np.zeros(0, dtype=np.int64)
        else:
            valid = samples["stack_id"].between(0, len(self.stacks) - 1)
            samples = samples[valid]
            self.t = samples["t_ns"].to_numpy(dtype=np.int64)
            self.dt = samples["dt_ns"].to_numpy(dtype=np.int64)
            self.sid = samples["stack_id"].to_numpy(dtype=np.int64)
        self._cache: dict[str, list[Any]] = {}

    @property
    def empty(self) -> bool:
        return len(self.t) == 0

    def stack(self, sid: int) -> list[_Frame]:
        return [self.frames[i] for i in self.stacks[sid] if 0 <= i < len(self.frames)]

    def per_stack(self, key: str, fn: Callable[[list[_Frame]], Any]) -> list[Any]:
        if key not in self._cache:
            self._cache[key] = [fn(self.stack(i)) for i in range(len(self.stacks))]
        return self._cache[key]

    def stack_is_import(self, frames: list[_Frame]) -> bool:
        return any(f.file.startswith("<frozen importlib") for f in frames)

    def in_window_not_importing(self, window: np.ndarray) -> np.ndarray:
        """`in_window`, less the samples taken inside an import (start-up, not the workload)."""
        imports = np.array(self.per_stack("stack_is_import", self.stack_is_import), dtype=bool)
        return self.in_window(window) & ~imports[self.sid]

    def in_window(self, window: np.ndarray) -> np.ndarray:
        """Mask of samples whose midpoint lies in one of the window's intervals."""
        if self.empty or window.size == 0:
            return np.zeros(len(self.t), dtype=bool)
        mid = self.t + self.dt // 2
        idx = np.searchsorted(window[:, 0], mid, side="right") - 1
        ok = idx >= 0
        out = np.zeros(len(mid), dtype=bool)
        out[ok] = mid[ok] < window[idx[ok], 1]
        return out

    def seconds_where(self, predicate: Callable[[list[_Frame]], bool], window: np.ndarray) -> float:
        if self.empty:
            return 0.0
        flags = np.array(self.per_stack(predicate.__name__, predicate), dtype=bool)
        mask = flags[self.sid] & self.in_window(window)
        return float(self.dt[mask].sum()) / 1e9


# -- small helpers -------------------------------------------------------------------------------


def _framework_of(backend: str) -> str:
    return backend.split("_", 1)[0] if backend.startswith(("torch", "mlx")) else ""


def _device_of(backend: str) -> str | None:
    tail = backend.split("_", 1)[1] if "_" in backend else ""
    return tail if tail in (*GPU_DEVICES, CPU_DEVICE) else None


def _attrs_device(attrs: Any) -> str | None:
    if not isinstance(attrs, str) or not attrs:
        return None
    try:
        value = json.loads(attrs)
    except json.JSONDecodeError:
        return None
    return value.get("device") if isinstance(value, dict) else None


def _merge(intervals: np.ndarray) -> np.ndarray:
    """Sorted, non-overlapping union of [start, end) intervals."""
    if intervals.size == 0:
        return intervals.reshape(0, 2)
    intervals = intervals[np.argsort(intervals[:, 0])]
    out = [list(intervals[0])]
    for s, e in intervals[1:]:
        if s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return np.array(out, dtype=np.int64)


def _total_s(intervals: np.ndarray) -> float:
    return float((intervals[:, 1] - intervals[:, 0]).sum()) / 1e9 if intervals.size else 0.0


def _inside(starts: np.ndarray, ends: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mask of spans whose midpoint lies inside the window."""
    if window.size == 0:
        return np.zeros(len(starts), dtype=bool)
    mid = (starts + ends) // 2
    idx = np.searchsorted(window[:, 0], mid, side="right") - 1
    ok = idx >= 0
    out = np.zeros(len(mid), dtype=bool)
    out[ok] = mid[ok] < window[idx[ok], 1]
    return out


def _split_caller(caller: str | None) -> tuple[str, int] | None:
    if not caller or not isinstance(caller, str):
        return None
    file, _, line = caller.rpartition(":")
    if not file:
        return None
    try:
        return file, int(line)
    except ValueError:
        return caller, 0


def _short(path: str) -> str:
    """A path as a person reads it: from the package for installed code, relative to here else."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in _norm(path):
            return _norm(path).split(marker, 1)[1]
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def _sites_from_spans(spans: pd.DataFrame, by_count: bool = False) -> list[CallSite]:
    agg: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    for caller, dur in zip(spans["caller"].tolist(), spans["dur_s"].tolist(), strict=False):
        key = _split_caller(caller) or ("<unknown>", 0)
        agg[key][0] += 1
        agg[key][1] += dur
    sites = [CallSite(f, ln, int(c), float(s)) for (f, ln), (c, s) in agg.items()]
    sites.sort(key=(lambda c: (-c.count, -c.seconds)) if by_count else (lambda c: (-c.seconds, -c.count)))
    return sites[:TOP_SITES]


def _site_text(site: CallSite, unit: str = "calls") -> str:
    return f"{_short(site.file)}:{site.line} ({site.count:,} {unit}, {site.seconds:.2f} s)"


@dataclass
class _Series:
    metric: str
    source: str
    t: np.ndarray  # ns, sorted
    v: np.ndarray
    period_ns: int


def _gpu_util(tel: pd.DataFrame) -> _Series | None:
    if tel.empty or "metric" not in tel:
        return None
    for metric in ("gpu_util_pct", "gpu_active_pct"):
        rows = tel[tel["metric"] == metric]
        if rows.empty:
            continue
        # Several GPUs or sources at one instant: the busiest one is the one the run trains on.
        by_t = rows.groupby("t_ns")["value"].max().sort_index()
        t = by_t.index.to_numpy(dtype=np.int64)
        v = by_t.to_numpy(dtype=float)
        period = int(np.median(np.diff(t))) if len(t) > 1 else 1_000_000_000
        period = min(max(period, 1_000_000), 1_000_000_000)
        sources = ", ".join(sorted(str(s) for s in rows["source"].unique()))
        return _Series(metric, sources, t, v, period)
    return None


def _util_over(series: _Series, starts: np.ndarray, ends: np.ndarray) -> float | None:
    """Duration-weighted mean utilisation over intervals.

    A utilisation reading at time t describes the period (t - period, t], so the readings that
    overlap an interval [s, e] are those taken in (s, e + period); an interval that holds none
    (shorter than the period, between two readings) takes the first reading after it.
    """
    if len(starts) == 0 or len(series.t) == 0:
        return None
    t, v = series.t, series.v
    csum = np.concatenate([[0.0], np.cumsum(v)])
    i0 = np.searchsorted(t, starts, side="right")
    i1 = np.searchsorted(t, ends + series.period_ns, side="left")
    n = i1 - i0
    means = np.full(len(starts), np.nan)
    has = n > 0
    means[has] = (csum[i1[has]] - csum[i0[has]]) / n[has]
    after = ~has & (i0 < len(t))
    means[after] = v[i0[after]]
    weights = (ends - starts).astype(float)
    ok = ~np.isnan(means)
    if not ok.any():
        return None
    w = weights[ok]
    if w.sum() <= 0:
        return float(means[ok].mean())
    return float((means[ok] * w).sum() / w.sum())


def _first_user_frame(frames: Sequence[_Frame]) -> _Frame | None:
    for frame in reversed(frames):
        if not frame.library:
            return frame
    return None


# -- rules ---------------------------------------------------------------------------------------


def _sample_sync_kind(frames: list[_Frame]) -> str | None:
    if not frames:
        return None
    leaf = frames[-1]
    if leaf.file != "<built-in>":
        return None
    kind = _SAMPLE_SYNC_FUNCTIONS.get(leaf.function)
    if kind:
        return kind
    owner, _, method = leaf.function.rpartition(".")
    if method in _SAMPLE_SYNC_METHODS and ("Tensor" in owner or owner == "Parameter"):
        return _SAMPLE_SYNC_METHODS[method]
    return None


def _sample_syncs(ctx: _Context) -> pd.DataFrame:
    """Syncs seen only in the stack samples (not hooked): a sync-method leaf overlapping no span."""
    samples = ctx.samples
    cols = ["name", "start_ns", "end_ns", "caller", "dur_s", "device"]
    if samples.empty:
        return pd.DataFrame(columns=cols)
    kinds = samples.per_stack("sync_kind", _sample_sync_kind)
    flags = np.array([k is not None for k in kinds], dtype=bool)
    mask = flags[samples.sid]
    if not mask.any():
        return pd.DataFrame(columns=cols)
    starts, ends = samples.t[mask], samples.t[mask] + samples.dt[mask]
    sids = samples.sid[mask]
    hooked = ctx.syncs
    if not hooked.empty:
        order = np.argsort(hooked["start_ns"].to_numpy())
        h_start = hooked["start_ns"].to_numpy()[order]
        h_end_max = np.maximum.accumulate(hooked["end_ns"].to_numpy()[order])
        idx = np.searchsorted(h_start, ends, side="left") - 1
        overlap = (idx >= 0) & (h_end_max[np.clip(idx, 0, None)] > starts)
        starts, ends, sids = starts[~overlap], ends[~overlap], sids[~overlap]
    # The device: the backend's, else the one every hooked sync ran on, else unknown (skipped).
    device = ctx.device
    if device is None:
        seen = set(ctx.syncs["device"]) - {"unknown"}
        device = seen.pop() if len(seen) == 1 else None
    if device is None:
        return pd.DataFrame(columns=cols)
    rows = []
    for s, e, sid in zip(starts.tolist(), ends.tolist(), sids.tolist(), strict=False):
        user = _first_user_frame(samples.stack(sid))
        rows.append(
            {
                "name": kinds[sid],
                "start_ns": s,
                "end_ns": e,
                "caller": f"{user.file}:{user.line}" if user else None,
                "dur_s": (e - s) / 1e9,
                "device": device,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def rule_sync(ctx: _Context) -> list[Finding]:
    syncs = ctx.syncs[["name", "start_ns", "end_ns", "caller", "dur_s", "device"]]
    from_samples = _sample_syncs(ctx)
    if not from_samples.empty:
        syncs = from_samples if syncs.empty else pd.concat([syncs, from_samples], ignore_index=True)
    if syncs.empty:
        return []
    starts = syncs["start_ns"].to_numpy(np.int64)
    syncs = syncs[_inside(starts, syncs["end_ns"].to_numpy(np.int64), ctx.window)]
    on_device = syncs[syncs["device"] != CPU_DEVICE]
    on_cpu = syncs[syncs["device"] == CPU_DEVICE]

    findings: list[Finding] = []
    if not on_device.empty:
        total = float(on_device["dur_s"].sum())
        share = total / ctx.window_s
        if share >= SYNC_BOUND_SHARE:
            findings.append(_sync_bound(ctx, on_device, total, share, from_samples))
        elif len(on_device) >= SYNC_SITES_MIN_CALLS:
            findings.append(_sync_sites(ctx, on_device, on_gpu=True))
    # CPU syncs are reported (as info) on a CPU run, or where nothing ran on a device at all.
    if not on_cpu.empty and (ctx.device == CPU_DEVICE or on_device.empty):
        findings.append(_sync_sites(ctx, on_cpu, on_gpu=False))
    return findings


def _by_kind(syncs: pd.DataFrame) -> list[str]:
    lines = []
    grouped = syncs.groupby("name")["dur_s"].agg(["count", "sum"]).sort_values("sum", ascending=False)
    for name, row in grouped.iterrows():
        n, s = int(row["count"]), float(row["sum"])
        lines.append(f"{name}: {n:,} call{'s' if n != 1 else ''}, {s:.2f} s (mean {s / n * 1e3:.2f} ms)")
    return lines


def _sync_bound(ctx: _Context, syncs: pd.DataFrame, total: float, share: float, from_samples: pd.DataFrame) -> Finding:
    devices = "/".join(sorted(set(syncs["device"])))
    evidence = [
        f"{len(syncs):,} blocking syncs on {devices}: {total:.2f} s of {ctx.window_text} ({share:.0%})",
        *_by_kind(syncs),
    ]
    if not from_samples.empty:
        seen = from_samples[from_samples["device"] != CPU_DEVICE]
        if not seen.empty:
            evidence.append(
                f"{seen['dur_s'].sum():.2f} s of these are unhooked syncs seen only in stack samples "
                f"({len(seen):,} samples whose leaf is a sync method)"
            )
    series = ctx.gpu_util()
    split = "unknown"
    if series is not None:
        starts = syncs["start_ns"].to_numpy(np.int64)
        ends = syncs["end_ns"].to_numpy(np.int64)
        u_sync = _util_over(series, starts, ends)
        u_all = _util_over(series, ctx.window[:, 0], ctx.window[:, 1])
        if u_sync is not None:
            split = "device-bound" if u_sync >= SYNC_DEVICE_BUSY_PCT else "serialisation"
            evidence.append(
                f"mean GPU utilisation during the syncs {u_sync:.0f}% "
                f"(busy at >= {SYNC_DEVICE_BUSY_PCT:.0f}%)"
                + (f", {u_all:.0f}% over the whole window" if u_all is not None else "")
                + f" ({series.metric} from {series.source}, {len(series.t):,} readings)"
            )
    if split == "device-bound":
        severity = "medium"
        claim = (
            f"Blocking syncs take {share:.0%} of the training time, but the GPU was busy while the host "
            "waited (device-bound): the syncs only show where the wait for GPU work lands"
        )
        fix = (
            "The GPU work itself is the bottleneck, and removing the syncs would mostly move the wait: "
            "make the step cheaper (mixed precision, channels-last, a compiled step) or the model smaller."
        )
    elif split == "serialisation":
        severity = "high" if share >= SYNC_HIGH_SHARE else "medium"
        claim = (
            f"Blocking host-device syncs take {share:.0%} of the training time and the GPU idles around "
            "them (serialisation): host and GPU take turns instead of overlapping"
        )
        fix = (
            "Remove or batch the per-step syncs: accumulate loss and accuracy on the device and read them "
            "once per epoch, and avoid Python branches on tensor values (`if loss < x`)."
        )
    else:
        severity = "high" if share >= SYNC_HIGH_SHARE else "medium"
        claim = (
            f"Blocking host-device syncs take {share:.0%} of the training time (no GPU utilisation "
            "telemetry, so whether the GPU was busy (device-bound) or idle (serialisation) can't be told)"
        )
        fix = (
            "Read metrics once per epoch instead of per batch (accumulate on the device); if the time "
            "stays, the GPU work itself is the bottleneck. Rerun with GPU telemetry to tell which."
        )
        evidence.append("no GPU utilisation telemetry (gpu_util_pct / gpu_active_pct) in this run")
    evidence.insert(1, f"split: {split}")
    if ctx.framework == "mlx":
        evidence.append("MLX is lazy: an mx.eval's time includes computing the graph it evaluates")
    return Finding("sync-bound", severity, claim, evidence, fix, _sites_from_spans(syncs))


def _sync_sites(ctx: _Context, syncs: pd.DataFrame, on_gpu: bool) -> Finding:
    """`info`: blocking syncs that cost little here, named because they cost more elsewhere."""
    total = float(syncs["dur_s"].sum())
    kinds = syncs["name"].value_counts()
    top = ", ".join(f"{name} x{n:,}" for name, n in kinds.head(3).items())
    calls = f"{len(syncs):,} blocking-sync call{'s' if len(syncs) != 1 else ''} ({top})"
    share = f"{total:.3f} s inside these calls ({total / ctx.window_s:.1%} of {ctx.window_text})"
    if on_gpu:
        devices = "/".join(sorted(set(syncs["device"])))
        claim = (
            f"{calls} on {devices} cost little here: the GPU keeps up with the host, so they are not "
            "the bottleneck; on a slower GPU each one stalls the host"
        )
        first = f"{share}: below the {SYNC_BOUND_SHARE:.0%} of a sync-bound finding"
        fix = (
            "Nothing urgent on this device. Before running the same loop on a slower GPU (the study's "
            "Apple mps spent 41 s in Tensor.item), accumulate metrics on the device and read them once "
            "per epoch."
        )
    else:
        claim = f"{calls} ran on the CPU device, where they cost nothing; on a GPU each would stall the host"
        first = f"{share}: the work itself, not waiting (the CPU computes synchronously)"
        fix = (
            "Nothing to do on the CPU. Before moving to a GPU, accumulate metrics on the device and read "
            "them once per epoch instead of at these lines."
        )
    return Finding("sync-sites", "info", claim, [first, *_by_kind(syncs)], fix, _sites_from_spans(syncs, by_count=True))


def _input_site(frames: list[_Frame], h2d: bool) -> tuple[int, _Frame] | None:
    """(priority, frame) naming the input work in one stack, or None (not input work).

    Priority: the dataset's `__getitem__` (the outermost one outside torch.utils.data, so a Subset
    wrapper names the dataset it wraps) > a torch.utils.data `__getitem__` > a collate function >
    other torch.utils.data frames (DataLoader iteration, waiting for workers) > a host-to-device
    copy on a GPU run (named by its caller).
    """
    best: tuple[int, _Frame] | None = None
    for frame in frames:
        file = _norm(frame.file)
        name = frame.short_name
        in_data = "/torch/utils/data/" in file
        if frame.file == "<built-in>":
            continue
        if name in ("__getitem__", "__getitems__") and (
            not frame.library or in_data or "/datasets/" in file or "/data/" in file
        ):
            # a dataset's: the user's own, torch.utils.data's, or a library's datasets package
            # (torchvision.datasets, HF datasets); not typing's, numpy's or nn.Sequential's
            prio = 3 if not in_data else 2
        elif "collate" in name.lower():
            prio = 1
        elif in_data:
            prio = 0
        else:
            continue
        if best is None or prio > best[0]:  # outermost wins among equals
            best = (prio, frame)
    if best is not None:
        return best
    if h2d and frames:
        leaf = frames[-1]
        owner, _, method = leaf.function.rpartition(".")
        if leaf.file == "<built-in>" and method in _H2D_METHODS and "Tensor" in owner:
            user = _first_user_frame(frames[:-1])
            if user is not None:
                label = f"{leaf.function} (host-to-device copy)"
                return (-1, _Frame(label, user.file, user.line, user.line, False))
    return None


def rule_input(ctx: _Context) -> list[Finding]:
    samples = ctx.samples
    data = ctx.spans[ctx.spans["kind"] == "data"]
    data = data[_inside(data["start_ns"].to_numpy(np.int64), data["end_ns"].to_numpy(np.int64), ctx.window)]
    h2d = ctx.uses_gpu
    sites: dict[tuple[str, str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    sampled_input_s = 0.0
    sampled_total_s = 0.0
    if not samples.empty:
        per_stack = samples.per_stack(f"input_site:{h2d}", lambda fr: _input_site(fr, h2d))
        in_win = samples.in_window_not_importing(ctx.window)
        sampled_total_s = float(samples.dt[in_win].sum()) / 1e9
        # With data spans, name what ran inside them; without, every input sample in the window.
        if not data.empty:
            in_win &= samples.in_window(_merge(data[["start_ns", "end_ns"]].to_numpy(np.int64)))
        for sid, dt in zip(samples.sid[in_win].tolist(), samples.dt[in_win].tolist(), strict=False):
            site = per_stack[sid]
            if site is None:
                continue
            _, frame = site
            key = (frame.function, frame.file, frame.first_line)
            sites[key][0] += 1
            sites[key][1] += dt / 1e9
            sampled_input_s += dt / 1e9

    if not data.empty:
        input_s = float(data["dur_s"].sum())
        share = input_s / ctx.window_s
        basis = f"{len(data):,} batch fetches ('data' phases): {input_s:.2f} s of {ctx.window_text} ({share:.0%})"
    elif sampled_total_s > 0:
        input_s = sampled_input_s
        share = input_s / sampled_total_s
        basis = (
            f"stack samples in the input pipeline: {input_s:.2f} s of {sampled_total_s:.2f} s sampled "
            f"in {ctx.window_label} ({share:.0%})"
        )
    else:
        return []
    if share < INPUT_BOUND_SHARE:
        return []

    ranked = sorted(sites.items(), key=lambda kv: -kv[1][1])
    evidence = [basis]
    for (function, file, line), (n, s) in ranked[:5]:
        evidence.append(f"{function} ({_short(file)}:{line}): {s:.2f} s in {n:,} samples")
    # The claim names the sites that hold a real part of the input time.
    names = [kv[0][0] for kv in ranked[:2] if kv[1][1] >= INPUT_NAME_SHARE * max(sampled_input_s, 1e-9)]
    where = f", mostly in {' and '.join(names)}" if names else ""
    claim = f"Loading batches takes {share:.0%} of the training time (input-bound){where}"
    call_sites = [CallSite(file, line, int(n), float(s)) for (_, file, line), (n, s) in ranked[:TOP_SITES]]
    severity = "high" if share >= INPUT_HIGH_SHARE else "medium"
    fix = (
        "Take per-sample Python work out of the loop: transform the dataset once up front or vectorise "
        "the transform over whole batches; then overlap loading with compute (DataLoader num_workers>0, "
        "pin_memory=True) or slice batches from a device-resident tensor (--loop tuned)."
    )
    return [Finding("input-bound", severity, claim, evidence, fix, call_sites)]


def _hot_user_sites(ctx: _Context, window: np.ndarray) -> list[CallSite]:
    """Where the host spends its time: the innermost user-code line of each sample."""
    samples = ctx.samples
    if samples.empty:
        return []
    per_stack = samples.per_stack("first_user", _first_user_frame)
    mask = samples.in_window_not_importing(window)
    agg: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    for sid, dt in zip(samples.sid[mask].tolist(), samples.dt[mask].tolist(), strict=False):
        frame = per_stack[sid]
        if frame is not None:
            agg[(frame.file, frame.line)][0] += 1
            agg[(frame.file, frame.line)][1] += dt / 1e9
    sites = [CallSite(f, ln, int(n), float(s)) for (f, ln), (n, s) in agg.items()]
    sites.sort(key=lambda c: -c.seconds)
    return sites[:TOP_SITES]


def rule_device_idle(ctx: _Context) -> list[Finding]:
    if not ctx.uses_gpu:
        return []
    series = ctx.gpu_util()
    if series is None:
        return []
    phases = ctx.spans[ctx.spans["kind"] == "train"]
    label = "training phases"
    if phases.empty:
        window = ctx.window
        label = ctx.window_label
    else:
        window = _merge(phases[["start_ns", "end_ns"]].to_numpy(np.int64))
    util = _util_over(series, window[:, 0], window[:, 1])
    if util is None or util >= DEVICE_IDLE_PCT:
        return []
    severity = "high" if util < DEVICE_IDLE_HIGH_PCT else "medium"
    evidence = [
        f"mean GPU utilisation {util:.0f}% during {label} ({_total_s(window):.2f} s; idle below "
        f"{DEVICE_IDLE_PCT:.0f}%) ({series.metric} from {series.source})"
    ]
    syncs = ctx.syncs[ctx.syncs["device"].isin(GPU_DEVICES)]
    if not syncs.empty:
        evidence.append(f"host blocked in syncs {syncs['dur_s'].sum():.2f} s")
    data = ctx.spans[ctx.spans["kind"] == "data"]
    if not data.empty:
        evidence.append(f"host loading batches {data['dur_s'].sum():.2f} s")
    sites = _hot_user_sites(ctx, window)
    if sites:
        top = "; ".join(_site_text(s, "samples") for s in sites[:3])
        evidence.append(f"host time by user line (stack samples): {top}")
    return [
        Finding(
            "device-idle",
            severity,
            f"The GPU is busy only {util:.0f}% of the training time: it waits for the host "
            "(kernel launches, input, syncs)",
            evidence,
            "Give the GPU more work per launch and keep the host ahead of it: larger batches, a compiled "
            "step (torch.compile / mx.compile), fewer syncs, input loading in DataLoader workers.",
            sites,
        )
    ]


def _memory_climb(ctx: _Context, evals: pd.DataFrame) -> str | None:
    tel = ctx.telemetry
    if tel.empty or "metric" not in tel:
        return None
    metrics = [m for m in tel["metric"].unique() if "mlx" in str(m).lower() and "active" in str(m).lower()]
    if not metrics:
        metrics = [m for m in tel["metric"].unique() if "mlx" in str(m).lower() and "mem" in str(m).lower()]
    if not metrics:
        return None
    rows = tel[tel["metric"] == metrics[0]].sort_values("t_ns")
    t = rows["t_ns"].to_numpy(np.int64)
    v = rows["value"].to_numpy(float)
    longest = evals.sort_values("dur_s").iloc[-1]
    before = v[(t <= longest["start_ns"])]
    if len(before) < 2:
        return None
    low, high = float(before.min()), float(before[-1])
    if high <= low * 1.2:
        return None
    return f"{metrics[0]} climbed from {low / 2**30:.2f} GB to {high / 2**30:.2f} GB before the longest eval"


def rule_lazy_graph(ctx: _Context) -> list[Finding]:
    if ctx.framework != "mlx":
        return []
    evals = ctx.syncs[ctx.syncs["name"].str.contains("eval", na=False)]
    if evals.empty:
        return []
    batches = ctx.spans[(ctx.spans["kind"] == "batch") & (ctx.spans["name"] == "train")]
    if batches.empty:
        batches = ctx.spans[ctx.spans["kind"].isin(("batch", "step"))]
    n_batches = len(batches)
    longest = float(evals["dur_s"].max())
    lazy_cfg = ctx.config.get("sync") == "lazy"
    few = n_batches >= LAZY_MIN_BATCHES and len(evals) <= LAZY_EVALS_PER_BATCH * n_batches
    if longest < LAZY_EVAL_MIN_S or not (lazy_cfg or few):
        return []
    evidence = [
        f"{len(evals):,} evals for {n_batches:,} training batches; longest {longest:.2f} s, "
        f"median {float(evals['dur_s'].median()):.2f} s, total {float(evals['dur_s'].sum()):.2f} s",
    ]
    if lazy_cfg:
        evidence.append("config.sync is 'lazy': the loop evaluates once per epoch")
    climb = _memory_climb(ctx, evals)
    if climb:
        evidence.append(climb)
    return [
        Finding(
            "lazy-graph",
            "medium",
            f"MLX evaluates a graph built over many batches: {len(evals):,} evals for {n_batches:,} "
            f"batches, the longest {longest:.1f} s",
            evidence,
            "Evaluate once per step (`mx.eval(model.parameters(), optimizer.state, loss)`) so each graph "
            "stays one step long: a graph deferred over many batches holds every intermediate in memory.",
            _sites_from_spans(evals),
        )
    ]


def rule_warmup(ctx: _Context) -> list[Finding]:
    spans = ctx.spans
    steps = spans[(spans["kind"] == "batch") & (spans["name"] == "train")]
    what = "training step"
    if len(steps) < WARMUP_MIN_STEPS:
        steps = spans[spans["kind"] == "step"]
    if len(steps) < WARMUP_MIN_STEPS:
        steps = spans[spans["kind"] == "batch"]
        what = "batch"
    evidence: list[str] = []
    excess = 0.0
    claim = None
    if len(steps) >= WARMUP_MIN_STEPS:
        dur = steps.sort_values("start_ns")["dur_s"].to_numpy(float)
        first, steady = float(dur[0]), float(np.median(dur[1:]))
        if steady > 0 and first >= WARMUP_RATIO * steady and first - steady >= WARMUP_MIN_EXCESS_S:
            excess += first - steady
            claim = (
                f"The first {what} takes {first:.2f} s, {first / steady:.0f}x the steady-state "
                f"{steady * 1e3:.1f} ms (warm-up)"
            )
            evidence.append(f"first {what} {first:.3f} s vs median {steady * 1e3:.2f} ms of the other {len(dur) - 1:,}")
    epochs = spans[spans["kind"] == "epoch"]
    if len(epochs) >= 3:
        dur = epochs.sort_values("start_ns")["dur_s"].to_numpy(float)
        first, steady = float(dur[0]), float(np.median(dur[1:]))
        if steady > 0 and first >= WARMUP_EPOCH_RATIO * steady and first - steady >= WARMUP_MIN_EXCESS_S:
            evidence.append(f"first epoch {first:.2f} s vs median {steady:.2f} s of the other {len(dur) - 1}")
            if claim is None:
                claim = f"The first epoch takes {first:.2f} s, {first / steady:.1f}x the others (warm-up)"
            excess = max(excess, first - steady)
    if claim is None:
        return []
    share = excess / ctx.window_s
    evidence.append(f"warm-up costs about {excess:.2f} s ({share:.0%} of {ctx.window_text})")
    return [
        Finding(
            "warmup",
            "medium" if share >= WARMUP_MEDIUM_SHARE else "low",
            claim + ": compilation, autotuning, allocator growth, lazy initialisation",
            evidence,
            "Expected once per run: leave the first steps out of timings and comparisons (or warm up "
            "before measuring); if slow steps recur, look for recompiles caused by changing shapes.",
        )
    ]


def rule_throttling(ctx: _Context) -> list[Finding]:
    tel = ctx.telemetry
    if tel.empty or "metric" not in tel:
        return []
    evidence: list[str] = []
    severity = None
    fixes: list[str] = []

    def raise_to(level: str) -> None:
        nonlocal severity
        if severity is None or _SEVERITY_RANK[level] < _SEVERITY_RANK[severity]:
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


RULES: tuple[Callable[[_Context], list[Finding]], ...] = (
    rule_sync,
    rule_input,
    rule_device_idle,
    rule_lazy_graph,
    rule_warmup,
    rule_throttling,
)


def diagnose(run: RunData) -> list[Finding]:
    """All findings for one run, most severe first."""
    ctx = _Context(run)
    findings: list[Finding] = []
    for rule in RULES:
        try:
            findings += rule(ctx)
        except Exception as exc:  # one broken rule must not cost the others (or the report)
            findings.append(
                Finding(
                    "diagnosis-error",
                    "info",
                    f"rule {rule.__name__} could not run on this run directory",
                    [f"{type(exc).__name__}: {exc}"],
                    "Report this as a cnnprof bug, with the run directory.",
                )
            )
    findings.sort(key=lambda f: _SEVERITY_RANK.get(f.severity, len(SEVERITIES)))
    return findings


# -- renderers -----------------------------------------------------------------------------------


def findings_json(findings: Iterable[Finding]) -> str:
    """A JSON list of {id, severity, claim, evidence, fix, call_sites: [{file, line, count, seconds}]}."""
    return json.dumps([f.to_dict() for f in findings], indent=2)


# Rules whose call sites come from stack samples (count = samples, not calls).
_SAMPLE_SITE_RULES = {"input-bound", "device-idle"}

_SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def findings_table(findings: Sequence[Finding]) -> Any:
    """A rich Table: one row per finding (claim, evidence, fix, top call sites)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Findings", show_lines=True, expand=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("finding", no_wrap=True)
    table.add_column("what, why, and what to do", ratio=1)
    if not findings:
        table.add_row("", "none", "No bottleneck found by the rules.")
        return table
    for f in findings:
        body = Text()
        body.append(f.claim, style="bold")
        for line in f.evidence:
            body.append(f"\n  - {line}")
        body.append("\nfix: ", style="green")
        body.append(f.fix)
        if f.call_sites:
            unit = "samples" if f.id in _SAMPLE_SITE_RULES else "calls"
            body.append("\nat: ", style="green")
            body.append("; ".join(_site_text(s, unit) for s in f.call_sites[:3]))
        table.add_row(Text(f.severity, style=_SEVERITY_STYLE.get(f.severity, "")), f.id, body)
    return table
