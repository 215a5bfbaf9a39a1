"""The run as every rule sees it, prepared once: spans, the syncs by device, the training steps
and their steady state, the stack samples and the telemetry. Read-only for the rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ...traces import steps as step_model
from ...traces.gpu_trace import GpuTrace, read_gpu_trace
from ...traces.processes import ProcessSamples
from ...traces.reader import RunData
from ...traces.steps import merge_intervals as merge
from .series import FEW_READINGS, Series, gpu_util, lookback_ns, readings_inside, util_over
from .steady import outlier_mask, warmup_count

GPU_DEVICES = ("cuda", "mps", "gpu")
CPU_DEVICE = "cpu"
# A sync that starts within this long (or two median steps) after a steady step, outside the
# steps, waits for the steps' deferred GPU work (RunView._deferred_waits). An epoch's end in
# cnnprof's loops and in user scripts: a progress callback, then the read of the totals.
DEFERRED_GAP_NS = 2_000_000
# Spans of evaluation: their syncs are never the training steps' (cnnprof's loops; the step
# hooks' "eval mode" phases are matched by name).
EVAL_KINDS = ("validation", "test", "single_inference", "single")
# Call sites listed per finding.
TOP_SITES = 10
_EMPTY = np.zeros((0, 2), dtype=np.int64)


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: int
    first_line: int
    library: bool

    @property
    def short_name(self) -> str:
        return self.function.rsplit(".", 1)[-1]


def norm(path: str) -> str:
    return path.replace("\\", "/")


def total_s(intervals: np.ndarray) -> float:
    return float((intervals[:, 1] - intervals[:, 0]).sum()) / 1e9 if intervals.size else 0.0


def inside(starts: np.ndarray, ends: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mask of spans whose midpoint lies inside the window."""
    if window.size == 0:
        return np.zeros(len(starts), dtype=bool)
    mid = (starts + ends) // 2
    idx = np.searchsorted(window[:, 0], mid, side="right") - 1
    ok = idx >= 0
    out = np.zeros(len(mid), dtype=bool)
    out[ok] = mid[ok] < window[idx[ok], 1]
    return out


def attrs_of(attrs: Any) -> dict[str, Any]:
    if not isinstance(attrs, str) or not attrs:
        return {}
    try:
        value = json.loads(attrs)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _framework_of(backend: str) -> str:
    return backend.split("_", 1)[0] if backend.startswith(("torch", "mlx")) else ""


def _device_of(backend: str) -> str | None:
    tail = backend.split("_", 1)[1] if "_" in backend else ""
    return tail if tail in (*GPU_DEVICES, CPU_DEVICE) else None


class Samples:
    """The stack samples (of the main process, or of one child) with per-stack facts computed
    once per unique stack."""

    def __init__(self, run: RunData | ProcessSamples) -> None:
        samples = run.samples
        stacks = run.stacks
        self.frames = [
            Frame(
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
        self._stack_frames: list[list[Frame]] | None = None

    @property
    def empty(self) -> bool:
        return len(self.t) == 0

    def stack(self, sid: int) -> list[Frame]:
        if self._stack_frames is None:
            n = len(self.frames)
            self._stack_frames = [[self.frames[i] for i in ids if 0 <= i < n] for ids in self.stacks]
        return self._stack_frames[sid]

    def per_stack(self, key: str, fn: Callable[[list[Frame]], Any]) -> list[Any]:
        if key not in self._cache:
            self._cache[key] = [fn(self.stack(i)) for i in range(len(self.stacks))]
        return self._cache[key]

    @staticmethod
    def stack_is_import(frames: list[Frame]) -> bool:
        return any(f.file.startswith("<frozen importlib") for f in frames)

    def in_window_not_importing(self, window: np.ndarray) -> np.ndarray:
        """`in_window`, less the samples taken inside an import (start-up, not the workload)."""
        imports = np.array(self.per_stack("stack_is_import", self.stack_is_import), dtype=bool)
        return self.in_window(window) & ~imports[self.sid]

    def in_window(self, window: np.ndarray) -> np.ndarray:
        """Mask of samples whose midpoint lies in one of the window's intervals."""
        if self.empty or window.size == 0:
            return np.zeros(len(self.t), dtype=bool)
        return inside(self.t, self.t + self.dt, window)

    def seconds_where(self, predicate: Callable[[list[Frame]], bool], window: np.ndarray) -> float:
        if self.empty:
            return 0.0
        flags = np.array(self.per_stack(predicate.__name__, predicate), dtype=bool)
        mask = flags[self.sid] & self.in_window(window)
        return float(self.dt[mask].sum()) / 1e9

    def totals_by_stack(self, mask: np.ndarray) -> list[tuple[int, int, float]]:
        """(stack id, samples, seconds) of the masked samples, for each stack that has any: rules
        aggregate per stack, not per sample (a long run has a million samples, a few thousand stacks)."""
        if self.empty or not mask.any():
            return []
        sids = self.sid[mask]
        counts = np.bincount(sids, minlength=len(self.stacks))
        seconds = np.bincount(sids, weights=self.dt[mask], minlength=len(self.stacks)) / 1e9
        return [(int(i), int(counts[i]), float(seconds[i])) for i in np.flatnonzero(counts)]

    def total_in(self, window: np.ndarray) -> float:
        return float(self.dt[self.in_window(window)].sum()) / 1e9 if not self.empty else 0.0


class RunView:
    """What the rules read. `window` is the steady-state training steps where the run has steps
    (the training window minus warm-up); shares are of `window_s`, never of imports or setup."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self._memo: dict[str, Any] = {}
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
        if "attrs" not in spans:
            spans["attrs"] = None
        self.spans = spans

        syncs = spans[spans["kind"] == "sync"].copy()
        syncs["device"] = [attrs_of(a).get("device") or self.device or "unknown" for a in syncs["attrs"].tolist()]
        # A sync is a wait on an accelerator. On the CPU device an mx.eval is the computation itself.
        self.syncs = syncs[syncs["device"] != CPU_DEVICE]
        self.cpu_evals = syncs[syncs["device"] == CPU_DEVICE]

        self.duration_ns = int(meta.get("duration_ns") or run.duration_ns or 0)
        self.telemetry = run.telemetry
        self.samples = Samples(run)
        self.steps, self.steps_source = self._steps()
        durations = (self.steps[:, 1] - self.steps[:, 0]) / 1e9
        self.n_warmup = warmup_count(durations)
        outliers = outlier_mask(durations, self.n_warmup)
        self.outliers = self.steps[outliers]
        self.steady = self.steps[self.n_warmup :][~outliers[self.n_warmup :]]
        self.deferred = self._deferred_waits()
        self.import_s = 0.0
        self.window = self._window()
        self.window_s = max(total_s(self.window) - self.import_s, 1e-9)

    # -- steps and windows -------------------------------------------------------------------
    def _steps(self) -> tuple[np.ndarray, str]:
        spans = self.spans
        recorded = spans[spans["kind"] == step_model.STEP_KIND]
        if not recorded.empty:
            out = recorded[["start_ns", "end_ns"]].to_numpy(dtype=np.int64)
            return out[np.argsort(out[:, 0])], "step hooks"
        derived = step_model.derive_steps(spans)  # a run killed before its end, or an older run
        return derived, ("steps derived on read" if len(derived) else "")

    def _deferred_waits(self) -> np.ndarray:
        """Syncs that start just after a steady step, outside every step and every evaluation:
        the wait for GPU work that the host queued during the steps and ran ahead of (a CUDA
        graph replayed or an async eval per step, then one read at the epoch's end). That wait
        is the steps' time: without it, the host's side of a step would look like all of it."""
        steady, syncs = self.steady, self.syncs
        if not len(steady) or syncs.empty:
            return _EMPTY
        starts = syncs["start_ns"].to_numpy(np.int64)
        ends = syncs["end_ns"].to_numpy(np.int64)
        order = np.argsort(steady[:, 1])
        step_ends = steady[order, 1]
        before = np.searchsorted(step_ends, starts, side="right") - 1
        median = float(np.median(steady[:, 1] - steady[:, 0]))
        ok = before >= 0
        gap = starts - step_ends[np.clip(before, 0, None)]
        ok &= gap <= max(DEFERRED_GAP_NS, 2 * median)
        ok &= ~inside(starts, starts + 1, merge(self.steps))
        kinds = self.spans["kind"]
        evals = self.spans[kinds.isin(EVAL_KINDS) | ((kinds == "phase") & (self.spans["name"] == "eval mode"))]
        if not evals.empty:
            ok &= ~inside(starts, starts + 1, merge(evals[["start_ns", "end_ns"]].to_numpy(np.int64)))
        return merge(np.stack([starts[ok], ends[ok]], axis=1)) if ok.any() else _EMPTY

    def _window(self) -> np.ndarray:
        if len(self.steps):
            self.window_label = "steady-state training steps"
            steps = self.steady if len(self.steady) else self.steps
            return merge(np.concatenate([steps, self.deferred])) if len(self.deferred) else merge(steps)
        spans = self.spans
        for kinds, label in (
            (("epoch",), "training time (epochs)"),
            (("train", "validation", "test", "single"), "time in training and inference phases"),
        ):
            sel = spans[spans["kind"].isin(kinds)]
            if not sel.empty:
                self.window_label = label
                return merge(sel[["start_ns", "end_ns"]].to_numpy(dtype=np.int64))
        self.window_label = "the run (no training steps found)"
        end = self.duration_ns or (int(spans["end_ns"].max()) if not spans.empty else 0)
        if not end and not self.samples.empty:
            end = int((self.samples.t + self.samples.dt).max())
        window = np.array([[0, end]], dtype=np.int64)
        self.import_s = self.samples.seconds_where(Samples.stack_is_import, window)
        return window

    @property
    def window_text(self) -> str:
        if len(self.steps):
            n = len(self.steady) if len(self.steady) else len(self.steps)
            warm = f" after {self.n_warmup:,} warm-up step{'s' if self.n_warmup != 1 else ''}" if self.n_warmup else ""
            if len(self.outliers):
                warm += f", {len(self.outliers):,} one-off slow step{'s' if len(self.outliers) != 1 else ''} left out"
            return f"{self.window_s:.2f} s of {n:,} steady-state training steps{warm}"
        text = f"{self.window_s:.2f} s of {self.window_label}"
        if self.import_s > 0:
            text += f", not counting {self.import_s:.2f} s of imports"
        return text

    @property
    def setup_window(self) -> np.ndarray:
        """The run before its first step (setup), empty when the run has no steps."""
        if not len(self.steps) or self.steps[0, 0] <= 0:
            return _EMPTY
        return np.array([[0, int(self.steps[0, 0])]], dtype=np.int64)

    @property
    def uses_gpu(self) -> bool:
        if self.device in GPU_DEVICES:
            return True
        return bool(self.syncs["device"].isin(GPU_DEVICES).any())

    @property
    def on_cpu(self) -> bool:
        """The run computes on the CPU (a CPU backend, or a script whose syncs were all CPU)."""
        return not self.uses_gpu

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """A figure several rules need, computed once per view."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @cached_property
    def gpu(self) -> Series | None:
        """GPU utilisation telemetry of a run on a GPU (NVML, powermetrics), or None."""
        return gpu_util(self.telemetry) if self.uses_gpu else None

    @cached_property
    def gpu_trace(self) -> GpuTrace | None:
        """The GPU-side trace of a few steps (CUDA runs: profiler/gpu_trace.py), or None."""
        path = getattr(self.run, "path", None)
        return read_gpu_trace(path) if self.uses_gpu and path is not None else None

    @cached_property
    def traced_busy_pct(self) -> float | None:
        """The GPU's busy share of the steady-state step by the GPU trace: its busy time per
        traced step over the mean steady step (deferred waits included); None without a trace
        of the steady state. Exact where NVML is coarse (a % of 1/6 s periods, which a short
        window or a short wait cannot resolve)."""
        trace = self.gpu_trace
        steps = self.steady if len(self.steady) else self.steps
        if trace is None or not len(steps) or not trace.starts_after(int(steps[0, 0])):
            return None
        per_step = trace.busy_per_step_ns
        if per_step is None:
            return None
        return min(100.0, 100.0 * per_step / (total_s(self.window) * 1e9 / len(steps)))

    @cached_property
    def device_busy_pct(self) -> float | None:
        """The GPU's busy share of the window: by the GPU trace where there is one, else the
        mean utilisation telemetry measured."""
        if self.traced_busy_pct is not None:
            return self.traced_busy_pct
        if self.gpu is None or not self.window.size:
            return None
        return util_over(self.gpu, self.window[:, 0], self.window[:, 1])

    @cached_property
    def busy_caveat(self) -> str | None:
        """Where the busy share comes from telemetry over a steady state that few readings lie
        wholly inside: what the figure is worth (else None)."""
        if self.traced_busy_pct is not None or self.gpu is None or not self.window.size:
            return None
        n = readings_inside(self.gpu, self.window)
        if n >= FEW_READINGS:
            return None
        return (
            f"a short steady state for {self.gpu.source}'s utilisation: {n} of its readings (each over "
            f"the last {lookback_ns(self.gpu) / 1e6:.0f} ms) lie wholly inside it, the rest mix in what ran "
            "around it (validation, an epoch's end); a run with more steps per epoch measures the GPU's "
            "share better"
        )

    # -- the steady-state step -----------------------------------------------------------------
    @cached_property
    def split(self) -> dict[str, float]:
        """Seconds of each part of the steady-state steps, summed (traces/steps.PARTS)."""
        steps = self.steady if len(self.steady) else self.steps
        if not len(steps):
            return {}
        # MLX computes inside mx.eval on every device: there the eval is the step's `sync` part
        # (which the verdict explains), not time lost in the step's Python.
        waits = pd.concat([self.syncs, self.cpu_evals]) if self.framework == "mlx" else self.syncs
        parts = step_model.split_steps(self.spans, steps, waits)
        out = {k: float(v.sum()) for k, v in parts.items()}
        out["sync"] = out.get("sync", 0.0) + total_s(self.deferred)  # waits for the steps' own work
        return out

    @cached_property
    def step_median_s(self) -> float | None:
        """The median steady step, plus its share of the deferred waits (a host that runs ahead
        finishes its side of a step long before the GPU does)."""
        steps = self.steady if len(self.steady) else self.steps
        if not len(steps):
            return None
        return float(np.median(steps[:, 1] - steps[:, 0])) / 1e9 + total_s(self.deferred) / len(steps)

    @cached_property
    def children(self) -> list[tuple[ProcessSamples, Samples]]:
        """The run's child processes, each with its stack samples: read on first use, by the
        rules that look at them (a run without children reads nothing)."""
        return [(proc, Samples(proc)) for proc in self.run.children]

    def hook_spans(self, name: str) -> pd.DataFrame:
        """The step hooks' spans of one name (profiler/steps.py: loader, compiled, async_eval, ...)."""
        return self.spans[(self.spans["kind"] == "hook") & (self.spans["name"] == name)]

    def loaders(self) -> list[dict[str, Any]]:
        """The DataLoaders the run iterated (num_workers, batch_size, pin_memory), from the hooks."""
        return [attrs_of(a) for a in self.hook_spans("loader")["attrs"].tolist()]
