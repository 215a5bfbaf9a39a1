"""Step hooks: what a training loop does, seen from the frameworks, with no change to its code.

While a run (or a profiled script) executes, these record raw spans of kind `hook` into the run's
`SpanRecorder` (one tuple append each); traces/steps.py turns them into `step` spans (and the
`setup` before the first step) when the run ends, or on read for a run killed before its end.

* torch: `optimizer` from the global optimizer step hooks
  (`torch.optim.optimizer.register_optimizer_step_pre_hook` / `_post_hook`, which every
  `Optimizer` subclass's `step` runs); `backward` from `Tensor.backward` and
  `torch.autograd.backward` (the outermost of the two); `data` from
  `_BaseDataLoaderIter.__next__` (one batch fetch, whether the batch comes from workers or not);
  `loader` from `DataLoader.__iter__` (creating the iterator: starting workers), with the
  DataLoader's `num_workers`, `batch_size` and `pin_memory`; `mode` from `Module.train` /
  `.eval()` (the outermost call), with `{"train": bool}`.
* mlx: `optimizer` from `mlx.optimizers.Optimizer.update`; `grad` from each call of a function
  made by `mlx.nn.value_and_grad`; `compiled` from each call of an `mx.compile`d function that
  updated an optimizer while it was traced (a compiled training step: its Python body, and so the
  update hook, runs only while tracing); `async_eval` from each `mx.async_eval` (the loop has the
  graph computed without waiting for it: an evaluation that no sync hook sees).
* `first_forward` (torch, until the first optimizer step only): the start of each top-level module
  call, from the global module forward hooks, so that the first step starts at its forward. The
  hooks are removed at that step, unless Dynamo has compiled a frame by then: a model compiled
  while they were installed guards on them, and removing them would recompile it (seen on the
  H200 with the fast loop's compiled model); they stay, inert, for the run.
* `mark` spans come from `cnnprof.step()` (the Python API), not from here.

Each hook costs two `perf_counter_ns()` and one append (benchmarks/step_hook_cost.py). Inside a
region torch.compile traces, the torch hooks call straight through. Nothing here raises into the
user's code: a module that lacks an attribute keeps its original and the reason goes into run.json.

Not seen: `torch.autograd.grad` (no backward span: its step's forward includes it), optimizers that
do not subclass `torch.optim.Optimizer`, iterating a DataLoader-like object that is not a torch
DataLoader (the `data` part is then forward or other), MLX's `mx.value_and_grad` (the core
function; `mlx.nn.value_and_grad` is what training code uses). Checked on the CPU with torch
2.13 and mlx 0.32 (tests/test_steps.py); never exercised: MPS, CUDA, MLX on a GPU.
"""

from __future__ import annotations

import importlib
import sys
import time
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..traces.tables import PENDING_STEPS
from .patching import Patcher, named
from .spans import SpanRecorder

if TYPE_CHECKING:
    from .session import RunSession

HOOK = "hook"
_now = time.perf_counter_ns
_WATCHED = {"torch", "torch.utils.data", "mlx.core", "mlx.nn", "mlx.optimizers"}


class StepHooks:
    """Installs and removes the step hooks for one `SpanRecorder`."""

    def __init__(self, recorder: SpanRecorder) -> None:
        self.recorder = recorder
        self.patcher = Patcher()
        self._handles: list[Any] = []
        self._forward_handles: list[Any] = []
        self._first_step_done = False
        self._warning_filter: Any = None
        self._installed: set[str] = set()
        # How deep the current thread is inside a hooked call of each kind (nesting: the outer wins).
        self._depth: dict[str, int] = {}
        self._opt_start: list[int] = []
        self._compiled_trained: bool = False
        self._never: Callable[[], bool] = lambda: False
        self._is_compiling = self._never

    # -- public ------------------------------------------------------------------------------
    def install(self, lazy: bool = True) -> None:
        for name in sorted(_WATCHED):
            if name in sys.modules:
                self.patcher.guarded(name, lambda name=name: self._on_import(name))
        if lazy:
            self.patcher.watch(_WATCHED, self._on_import)

    def remove(self) -> None:
        self._drop_forward_hooks()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.patcher.restore()
        self._installed.clear()

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for row in self.recorder.rows:
            if row[0] == HOOK:
                counts[row[1]] = counts.get(row[1], 0) + 1
        return {
            "hooked": self.patcher.hooked + (["optimizer step hooks"] if self._handles else []),
            "not_hooked": self.patcher.not_hooked,
            "notes": self.patcher.notes,
            "calls": counts,
        }

    # -- installing --------------------------------------------------------------------------
    def _on_import(self, name: str) -> None:
        module = sys.modules.get(name)
        if module is None or name in self._installed:
            return
        self._installed.add(name)
        install = {
            "torch": self._install_torch,
            "torch.utils.data": self._install_torch_data,
            "mlx.core": self._install_mlx_core,
            "mlx.nn": self._install_mlx_nn,
            "mlx.optimizers": self._install_mlx_optimizers,
        }[name]
        install(module)

    def _record(self, name: str, start: int, end: int, attrs: dict[str, Any] | None = None) -> None:
        rec = self.recorder
        rec.rows.append((HOOK, name, start, end, rec.epoch, rec.batch, None, attrs))

    def _span_wrapper(self, kind: str, attrs_of: Callable[..., dict[str, Any] | None] | None = None) -> Any:
        """A wrapper factory: the call becomes a `kind` span (the outermost of nested calls)."""
        depth = self._depth
        record = self._record

        def make(name: str, original: Any) -> Any:
            is_compiling = self._is_compiling

            def hooked(*args: Any, **kwargs: Any) -> Any:
                if depth.get(kind) or is_compiling():
                    return original(*args, **kwargs)
                depth[kind] = 1
                start = _now()
                try:
                    out = original(*args, **kwargs)
                finally:
                    depth[kind] = 0
                # Only calls that return: a DataLoader's closing StopIteration is no batch fetch.
                record(kind, start, _now(), attrs_of(*args) if attrs_of else None)
                return out

            return named(hooked, original, name)

        return make

    def _install_torch(self, torch: ModuleType) -> None:
        compiler = getattr(torch, "compiler", None)
        self._is_compiling = getattr(compiler, "is_compiling", None) or self._never
        optim = importlib.import_module("torch.optim.optimizer")  # torch.optim loads lazily
        self._handles.append(optim.register_optimizer_step_pre_hook(self._torch_opt_pre))
        self._handles.append(optim.register_optimizer_step_post_hook(self._torch_opt_post))
        # Until the first optimizer step: where each top-level forward starts, so that the first
        # step (and a compile in its forward) starts at its forward, not at its backward. The
        # global module hooks put every module call on torch's slow path, hence only this long.
        modules = torch.nn.modules.module
        self._forward_handles = [
            modules.register_module_forward_pre_hook(self._forward_pre),
            modules.register_module_forward_hook(self._forward_post),
        ]
        # torch warns on torch.compile(module) while global module hooks exist (they fire once
        # more, for the wrapper: harmless here, the depth count keeps the outer call). The
        # warning would be ours, in the user's output: silenced while the hooks are installed.
        warnings.filterwarnings("ignore", message=_GLOBAL_HOOKS_WARNING, category=UserWarning)
        self._warning_filter = warnings.filters[0]
        backward = self._span_wrapper("backward")
        self.patcher.patch(torch.Tensor, "backward", "Tensor.backward", backward)
        self.patcher.patch(torch.autograd, "backward", "torch.autograd.backward", backward)
        self.patcher.patch(torch.nn.Module, "train", "Module.train", self._mode_wrapper)
        if "torch.utils.data" in sys.modules:
            self._on_import("torch.utils.data")

    def _forward_pre(self, module: Any, args: Any) -> None:
        if self._is_compiling() or self._first_step_done:
            return
        depth = self._depth.get("forward", 0)
        self._depth["forward"] = depth + 1
        if depth == 0:
            t = _now()
            self._record("first_forward", t, t)

    def _forward_post(self, module: Any, args: Any, output: Any) -> None:
        if not self._is_compiling():
            self._depth["forward"] = max(self._depth.get("forward", 0) - 1, 0)

    def _drop_forward_hooks(self) -> None:
        for handle in self._forward_handles:
            handle.remove()
        self._forward_handles = []
        if self._warning_filter in warnings.filters:
            warnings.filters.remove(self._warning_filter)

    def _torch_opt_pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._opt_start.append(_now())

    def _torch_opt_post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._opt_start:
            start = self._opt_start.pop()
            if not self._opt_start:  # an optimizer stepping another inside its step: the outer one
                self._record("optimizer", start, _now())
                if self._forward_handles and not self._first_step_done:
                    self._first_step_done = True
                    if not _dynamo_compiled():
                        self._drop_forward_hooks()

    def _mode_wrapper(self, name: str, original: Any) -> Any:
        depth, record = self._depth, self._record

        def hooked(module: Any, mode: bool = True) -> Any:
            if depth.get("mode"):  # train() recurses into the children: record the outer call
                return original(module, mode)
            depth["mode"] = 1
            try:
                return original(module, mode)
            finally:
                depth["mode"] = 0
                t = _now()
                record("mode", t, t, {"train": bool(mode)})

        return named(hooked, original, name)

    def _install_torch_data(self, data: ModuleType) -> None:
        dataloader = data.dataloader

        def loader_attrs(loader: Any, *_: Any) -> dict[str, Any]:
            return {
                "num_workers": getattr(loader, "num_workers", None),
                "batch_size": getattr(loader, "batch_size", None),
                "pin_memory": getattr(loader, "pin_memory", None),
            }

        self.patcher.patch(
            dataloader._BaseDataLoaderIter, "__next__", "DataLoader.__next__", self._span_wrapper("data")
        )
        self.patcher.patch(
            dataloader.DataLoader, "__iter__", "DataLoader.__iter__", self._span_wrapper("loader", loader_attrs)
        )

    def _install_mlx_core(self, mx: ModuleType) -> None:
        self.patcher.patch(mx, "compile", "mx.compile", self._compile_wrapper)
        self.patcher.patch(mx, "async_eval", "mx.async_eval", self._span_wrapper("async_eval"))

    def _install_mlx_nn(self, nn: ModuleType) -> None:
        grad = self._span_wrapper("grad")

        def make(name: str, original: Any) -> Any:
            def value_and_grad(*args: Any, **kwargs: Any) -> Any:
                return grad("value_and_grad()", original(*args, **kwargs))

            return named(value_and_grad, original, name)

        self.patcher.patch(nn, "value_and_grad", "nn.value_and_grad", make)

    def _install_mlx_optimizers(self, optimizers: ModuleType) -> None:
        update = self._span_wrapper("optimizer")

        def make(name: str, original: Any) -> Any:
            wrapped = update(name, original)

            def hooked(*args: Any, **kwargs: Any) -> Any:
                self._compiled_trained = True  # read by a compiled function being traced
                return wrapped(*args, **kwargs)

            return named(hooked, original, name)

        self.patcher.patch(optimizers.Optimizer, "update", "Optimizer.update", make)

    def _compile_wrapper(self, name: str, original: Any) -> Any:
        """mx.compile -> a compiled function whose calls are `compiled` spans once it is known to
        train (an optimizer update ran while it was traced)."""
        record = self._record

        def compile_hooked(fun: Any, *args: Any, **kwargs: Any) -> Any:
            compiled = original(fun, *args, **kwargs)
            trains = False

            def call(*a: Any, **kw: Any) -> Any:
                nonlocal trains
                outer = self._compiled_trained
                self._compiled_trained = False
                start = _now()
                try:
                    return compiled(*a, **kw)
                finally:
                    trains = trains or self._compiled_trained
                    self._compiled_trained = outer or self._compiled_trained
                    if trains:
                        record("compiled", start, _now())

            return named(call, compiled if callable(compiled) else fun, "compiled function")

        return named(compile_hooked, original, name)


class StepHookObserver:
    """The run observer: hooks in at `start`, out at `stop`; leaves the steps to the first reader."""

    name = "step_hooks"

    def __init__(self, lazy: bool = True) -> None:
        self.lazy = lazy
        self.hooks: StepHooks | None = None

    def start(self, session: RunSession) -> None:
        self.hooks = StepHooks(session.recorder)
        self.hooks.install(lazy=self.lazy)

    def stop(self, session: RunSession) -> dict[str, Any]:
        hooks = self.hooks
        if hooks is None:
            return {}
        info = hooks.summary()
        hooks.remove()
        self.hooks = None
        # The step spans are derived by the first reader (traces/tables.py): it needs pandas, which
        # the run's end does not import.
        session.record.pending.append(PENDING_STEPS)
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(torch, "get_num_threads"):
            info["torch_threads"] = int(torch.get_num_threads())
        return info


_GLOBAL_HOOKS_WARNING = r"Using `torch\.compile\(module\)` when there are global hooks on modules"


def _dynamo_compiled() -> bool:
    """Whether torch.compile (Dynamo) has compiled a frame in this process."""
    utils = sys.modules.get("torch._dynamo.utils")
    counters = getattr(utils, "counters", None)
    try:
        return bool(counters and any(counters.get("frames", {}).values()))
    except (AttributeError, TypeError):
        return False
