"""Compile and recompile events as spans of kind `compile` (the `recompiles` rule reads them).

MLX: while the run is observed, `mx.compile` is wrapped (and restored at the end). The function
handed to MLX is a stand-in whose Python body runs only while MLX traces (a traced call never
runs Python again), so each run of that body is one (re)trace. The compiled callable is wrapped
too, so that a call that traced becomes a span covering trace + graph compilation, with attrs
`{"framework": "mlx", "fn", "trace" (1 = the first), "inputs" (dtype[shape] or a constant's
repr, as the trace saw them), "trace_s" (the Python body alone), "shapeless"}` and the call site
(the first frame outside mlx and cnnprof.profiler) as its caller. Kernels MLX builds lazily at the
next eval are not in the span.
Not covered: functions compiled before the run started; a run under `mx.disable_compile()` (the
body then runs on every call and every call would read as a trace; `MLX_DISABLE_COMPILE` is
checked and turns the hook off).

PyTorch: Dynamo keeps a record per frame compile (`torch._dynamo.utils.get_compilation_metrics()`:
code name, file, first line, wall-clock start / end, `recompile_reason` = the first guard that
failed, e.g. "tensor 'x' size mismatch at index 0. expected 3, actual 4"). At the end of the run
the records made during it become spans `{"framework": "torch", "fn", "compile_id", "reason",
"graph_ops", "fail", "def"}`. A start callback on Dynamo's `callback_handler` notes, per compile
id, the call site (the first frame outside torch: the line that called the compiled function),
which becomes the caller; without it, the compiled function's first line (`def`). The record
buffer (64 by default) is raised for the run. Graph breaks during the run are counted from
`torch._dynamo.utils.counters["graph_break"]` into run.json.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .callsite import call_site
from .patching import Patcher, named

if TYPE_CHECKING:
    from .session import RunSession

KIND = "compile"
# Dynamo's record buffer during the run (its default keeps only the last 64 compiles).
TORCH_METRICS_LIMIT = 100_000
MAX_INPUTS = 16

_now = time.perf_counter_ns


def describe_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """`float32[8,3]` per array (nested lists / tuples / dicts flattened), a constant's repr."""
    out: list[str] = []

    def walk(value: Any, prefix: str = "") -> None:
        if len(out) >= MAX_INPUTS:
            return
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            dtype = str(value.dtype).rsplit(".", 1)[-1]
            out.append(f"{prefix}{dtype}[{','.join(str(d) for d in value.shape)}]")
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, prefix)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{prefix}{key}=")
        else:
            out.append(f"{prefix}{repr(value)[:40]}")

    for arg in args:
        walk(arg)
    for key, arg in kwargs.items():
        walk(arg, f"{key}=")
    return out


class _Traced:
    """One function handed to mx.compile: its traces so far and what the last one saw."""

    __slots__ = ("fun", "name", "traces", "inputs", "site", "trace_ns", "stand_in")

    def __init__(self, fun: Any) -> None:
        self.fun = fun
        self.name = getattr(fun, "__qualname__", None) or getattr(fun, "__name__", None) or type(fun).__name__
        self.traces = 0
        self.inputs: list[str] = []
        self.site: str | None = None
        self.trace_ns = 0

        def stand_in(*args: Any, **kwargs: Any) -> Any:
            # Runs only while MLX traces: one run = one (re)trace.
            start = _now()
            self.inputs = describe_inputs(args, kwargs)
            self.site = call_site(sys._getframe(1))
            try:
                return fun(*args, **kwargs)
            finally:
                self.trace_ns = _now() - start
                self.traces += 1

        self.stand_in = functools.wraps(fun)(stand_in) if callable(fun) else stand_in


def mlx_compile_wrapper(recorder: Any, active: Callable[[], bool]) -> Callable[[str, Any], Any]:
    """`make` for Patcher.patch(mx, "compile", ...): mx.compile, recording each call that traced
    while `active()` (functions compiled in the run outlive it; afterwards they only pass through)."""

    def make(name: str, original: Any) -> Any:
        traced_by_fun: dict[Any, _Traced] = {}
        rows = recorder.rows

        def compile(fun: Any, *args: Any, **kwargs: Any) -> Any:
            try:  # one record per function, as MLX keeps one cache per function
                traced = traced_by_fun.setdefault(fun, _Traced(fun))
            except TypeError:  # unhashable callable: its own record
                traced = _Traced(fun)
            compiled = original(traced.stand_in, *args, **kwargs)
            shapeless = bool(kwargs.get("shapeless", args[2] if len(args) > 2 else False))

            def call(*a: Any, **k: Any) -> Any:
                before = traced.traces
                start = _now()
                out = compiled(*a, **k)
                if traced.traces != before and active():
                    attrs = {
                        "framework": "mlx",
                        "fn": traced.name,
                        "trace": traced.traces,
                        "inputs": traced.inputs,
                        "trace_s": traced.trace_ns / 1e9,
                        "shapeless": shapeless,
                    }
                    rows.append((KIND, traced.name, start, _now(), recorder.epoch, recorder.batch, traced.site, attrs))
                return out

            return functools.wraps(fun)(call) if callable(fun) else call

        return named(compile, original, name)

    return make


def torch_compile_spans(
    dynamo_utils: ModuleType, since_wall_ns: int, t0_perf_ns: int, sites: dict[str, str | None]
) -> list[tuple[Any, ...]]:
    """Span rows from Dynamo's compile records that started at or after `since_wall_ns`;
    `sites` maps a compile id to its call site."""
    offset = time.perf_counter_ns() - time.time_ns()  # wall clock -> the run's perf_counter clock
    rows: list[tuple[Any, ...]] = []
    for m in dynamo_utils.get_compilation_metrics():
        start_us, end_us = getattr(m, "start_time_us", None), getattr(m, "end_time_us", None)
        if not m.co_name or start_us is None or end_us is None or start_us * 1000 < since_wall_ns:
            continue  # (records without a code name are runtime / backward compiles)
        # torch.compile(model) compiles Dynamo's wrapper of the module call (a frame "inner" in
        # torch/_dynamo/external_utils.py): the model's forward is what the user compiled.
        wrapper = str(m.co_filename or "").replace("\\", "/").endswith("torch/_dynamo/external_utils.py")
        name = "compiled module forward" if wrapper else m.co_name
        attrs = {
            "framework": "torch",
            "fn": name,
            "compile_id": m.compile_id,
            "reason": m.recompile_reason,
            "graph_ops": m.graph_op_count,
            "fail": m.fail_type,
            "def": f"{m.co_filename}:{m.co_firstlineno}",
        }
        caller = sites.get(str(m.compile_id)) or attrs["def"]
        start, end = start_us * 1000 + offset, end_us * 1000 + offset
        rows.append((KIND, name, max(start, t0_perf_ns), end, None, None, caller, attrs))
    return rows


class CompileObserver:
    """Records compiles for the session (profiler/session.py's Observer protocol)."""

    name = "compiles"

    def __init__(self) -> None:
        self.patcher = Patcher()
        self._active = False
        self._mlx_hooked = False
        self._dynamo: ModuleType | None = None
        self._old_limit: int | None = None
        self._breaks_before: dict[str, int] = {}
        self._torch_sites: dict[str, str | None] = {}
        self._callbacks: Any = None
        self._start_wall_ns = 0
        self._session: RunSession | None = None

    def start(self, session: RunSession) -> None:
        self._session = session
        self._start_wall_ns = time.time_ns()
        self._active = True
        names = {"torch._dynamo.utils", "torch._dynamo.callback"}
        if not os.environ.get("MLX_DISABLE_COMPILE"):
            names.add("mlx.core")
        for name in sorted(names):
            if name in sys.modules:
                self.patcher.guarded(name, lambda name=name: self._on_import(name))
        self.patcher.watch({n for n in names if n not in sys.modules}, self._on_import)

    def _on_import(self, name: str) -> None:
        module = sys.modules[name]
        if name == "mlx.core":
            assert self._session is not None
            self.patcher.patch(
                module, "compile", "mx.compile", mlx_compile_wrapper(self._session.recorder, self._is_active)
            )
            self._mlx_hooked = "mx.compile" in self.patcher.hooked
        elif name == "torch._dynamo.utils":
            self._dynamo = module
            self._breaks_before = dict(module.counters.get("graph_break", {}))
            self._old_limit = getattr(getattr(module, "_compilation_metrics", None), "maxlen", None)
            if hasattr(module, "set_compilation_metrics_limit"):
                module.set_compilation_metrics_limit(TORCH_METRICS_LIMIT)
        elif name == "torch._dynamo.callback":
            self._callbacks = module.callback_handler
            self._callbacks.register_start_callback(self._on_compile_start)

    def _is_active(self) -> bool:
        return self._active

    def _on_compile_start(self, args: Any) -> None:
        # The first start of a compile id is its frame's (the forward's line); AOT autograd's
        # lazy backward compile starts again under the same id, from the backward's line.
        self._torch_sites.setdefault(str(args.compile_id), call_site(sys._getframe(1)))

    def stop(self, session: RunSession) -> dict[str, Any]:
        self._active = False
        self.patcher.restore()
        if self._callbacks is not None and self._on_compile_start in self._callbacks.start_callbacks:
            self._callbacks.remove_start_callback(self._on_compile_start)
        result: dict[str, Any] = {"mlx_hooked": self._mlx_hooked, "torch_hooked": self._dynamo is not None}
        if self._dynamo is not None:
            rows = torch_compile_spans(self._dynamo, self._start_wall_ns, session.t0_perf_ns, self._torch_sites)
            session.recorder.rows.extend(rows)
            breaks = {
                str(reason)[:200]: int(n) - self._breaks_before.get(reason, 0)
                for reason, n in self._dynamo.counters.get("graph_break", {}).items()
            }
            result["torch_graph_breaks"] = {reason: n for reason, n in breaks.items() if n > 0}
            if self._old_limit is not None:
                self._dynamo.set_compilation_metrics_limit(self._old_limit)
        result["compiles"] = sum(1 for row in session.recorder.rows if row[0] == KIND)
        if self.patcher.not_hooked or self.patcher.notes:
            result["notes"] = [f"{k}: {v}" for k, v in self.patcher.not_hooked.items()] + self.patcher.notes
        return result
