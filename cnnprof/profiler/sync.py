"""Hooks on the host-device sync points: every blocking sync becomes a `sync` span with its caller.

While a run (or a profiled script) executes, the sync points of the frameworks are wrapped:

* torch: `Tensor.item`, `.tolist`, `.cpu`, `.numpy`, `.__bool__`, `.__float__`, `.__int__`,
  `.__repr__` (printing a tensor reads it: one record per print, not one per element), patched
  on the Python class `torch.Tensor`, shadowing the C methods of `torch._C.TensorBase` (subclasses
  such as `nn.Parameter` inherit the patch); `torch.cuda.synchronize`, `torch.mps.synchronize`
  (module attributes).
* mlx: `mx.eval`, `mx.synchronize` (module attributes of `mlx.core`), `array.item`, `.tolist`,
  `.__array__`, `.__bool__`, `.__float__`, `.__int__` (attributes of the nanobind type
  `mlx.core.array`: with mlx 0.32 the type accepts attribute assignment, checked in
  tests/test_sync.py; `install` reports any attribute that refuses in `not_hooked`).

Each call records `("sync", <sync kind>, start_ns, end_ns, epoch, batch, "file:line", {"device": d})`
straight into the run's `SpanRecorder` (one list append). benchmarks/sync_hook_cost.py measures
the whole wrapper at 1.1-1.3 us per call on top of the original on a 16-core Xeon (Python 3.12;
+2.2 us on a CUDA scalar's `.item()`, whose cost varies more) and 1.6-2.4 us on the 2-core
development VM (Python 3.11, noisy); see its header.

The caller is the first frame that is user code by its path (profiler/library.py: not in
site-packages, the standard library, a framework's folder or cnnprof's own machinery, whatever
was imported when: a sync inside `for x in tqdm(loader)` is charged to the user's loop line).
cnnprof's training loops (`cnnprof/models/loops/`) count as user code: their `.item()` line is
the caller.

Device: torch tensor methods record the tensor's device (`cuda`, `mps`, `cpu`, or another
`device.type`); `torch.cuda.synchronize` / `torch.mps.synchronize` record `cuda` / `mps`; mlx calls
record the default device (`gpu` / `cpu`), because an mlx array has no device of its own (the
stream that computes it does, and that is the default device's unless the user passes `stream=`).

Only waits on an accelerator are syncs. A torch tensor method on a CPU tensor is passed straight
to the original and not recorded (`tensor.is_cpu`, one property read, is the first test after the
compile check): Adam's CPU step counters read inside `optimizer.step()` and a Dataset's per-sample
`int(t)` wait for nothing. An mlx array method is recorded only while the default device is the
GPU. `mx.eval` / `mx.synchronize` are recorded on the CPU device too (device `cpu`): there the eval
*is* the computation, which the diagnosis says, and it ends an MLX training step (traces/steps.py).

Under `torch.compile`: the torch wrappers' first statement is `torch.compiler.is_compiling()`,
which Dynamo folds to True while tracing, so inside a compiled region Dynamo traces only the
original call, never the hook's bookkeeping (`get_ident`, `perf_counter_ns`: untraceable, each a
graph break and a warning). One difference stays: `if tensor:` in a compiled region graph-breaks
with a one-time warning naming `TensorBase.__bool__` (it graph-breaks without hooks too, silently).
A hooked call made from inside torch's compiler machinery (Dynamo, FX, fake tensors, AOT autograd)
is not recorded: it is compilation, often on fake tensors, not a sync of the training. Calls that
run eagerly between compiled graphs are recorded as usual.

Nested calls are recorded once: a per-thread re-entrancy guard passes inner calls straight to the
original (e.g. a tensor subclass whose `.item()` goes through `__torch_function__` back into the
patched `Tensor.item`, or an mlx helper that calls `.item()` inside `.tolist()`).

Hooks go in for frameworks already in `sys.modules` at `start`; for the others an import watcher
(a `sys.meta_path` finder) installs them the moment the framework's import completes, which is
what a profiled script needs (it imports torch after the hooks start). `stop` removes the watcher
and restores every original attribute (identity-checked in tests/test_sync.py).

Not hooked, and why (the stack samples still show them):
* `Tensor.to("cpu")` / `.copy_()` device-to-host copies: telling a device-to-host copy from the
  far more frequent host-to-device batch transfer needs argument parsing on every `.to` call.
* `torch.cuda.Event.synchronize`, `torch.cuda.Stream.synchronize`, `torch.cuda.current_stream()
  .synchronize()`.
* `np.array(mlx_array)`: numpy takes the buffer protocol (a C slot) before `__array__`, so the
  implicit eval inside it is invisible to Python hooks.
* Functions bound before the hooks went in (`from mlx.core import eval`, `from torch.cuda import
  synchronize` executed earlier) keep calling the original.
* Sample-based fallback: where a sync is not hooked, the diagnosis finds long stack samples whose
  leaf is a torch C method (`TensorBase.item`, ...). This needs `--profiler pyinstrument` (the
  default signal sampler records Python frames only: the wait is time on the calling line) and
  works for torch only: under Python 3.11 pyinstrument's `c_call` events fire for builtin
  functions and method descriptors but not for nanobind callables, so an unhooked `mx.eval`
  shows as time on the calling line, not as a leaf.

GPUs: CI and the development machine have none, so the tests drive the CUDA paths with a tensor
subclass that reports `is_cuda` and a fake `torch.cuda.synchronize` wrapped the same way. The
real CUDA path (tensor methods on cuda tensors, `torch.cuda.synchronize`, callers, devices) was
checked by hand on an H100 (Python 3.12, torch 2.11+cu130). Never exercised: MPS tensors,
`torch.mps.synchronize`, mlx on a GPU (Metal or CUDA); mlx is exercised on its CPU backend only.
"""

from __future__ import annotations

import os
import sys
import time
from _thread import get_ident
from collections import Counter
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from .library import LibraryClassifier
from .patching import Patcher, named
from .spans import SpanRecorder

if TYPE_CHECKING:
    from .session import RunSession

SYNC_KIND = "sync"

# `__repr__` (print(t), logging): one record for the whole formatting, whose inner `.item()` /
# `.tolist()` calls (dozens per tensor, in torch/_tensor_str.py) the re-entrancy guard folds in.
TORCH_TENSOR_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__repr__")
MLX_ARRAY_METHODS = ("item", "tolist", "__array__", "__bool__", "__float__", "__int__")

# torch's compiler machinery: a hooked call from inside it happens while compiling (Dynamo, FX,
# fake tensors, AOT autograd, export), on tensors that are often fake; not a training sync.
_TORCH_COMPILER_DIRS = (
    "_dynamo",
    "_inductor",
    "fx",
    "_subclasses",
    "_functorch",
    "_export",
    "export",
    "_higher_order_ops",
)
_USER, _LIBRARY, _COMPILER = 0, 1, 2

# Shared, never mutated: one dict per device keeps the hook from allocating.
_DEVICE_ATTRS: dict[str, dict[str, str]] = {d: {"device": d} for d in ("cpu", "cuda", "mps", "gpu")}

_now = time.perf_counter_ns


class SyncHooks:
    """Installs and removes the sync hooks for one `SpanRecorder`."""

    def __init__(self, recorder: SpanRecorder) -> None:
        self.recorder = recorder
        # Re-entrancy guard: the ids of the threads inside a hooked call right now. A set plus
        # get_ident() costs ~0.2 us a call here, a threading.local flag ~0.35 us.
        self._busy: set[int] = set()
        self.patcher = Patcher()
        self._installed: set[str] = set()  # "torch", "mlx"
        self._is_library = LibraryClassifier()
        self._compiler_prefixes: tuple[str, ...] = ()
        self._excluded: dict[str, int] = {}  # file name -> _USER / _LIBRARY / _COMPILER
        self._torch_is_compiling: Callable[[], bool] = _never

    # -- public ------------------------------------------------------------------------------
    @property
    def hooked(self) -> list[str]:
        return self.patcher.hooked

    @property
    def not_hooked(self) -> dict[str, str]:
        return self.patcher.not_hooked

    @property
    def notes(self) -> list[str]:
        return self.patcher.notes

    def install(self, lazy: bool = True) -> None:
        """Hooks the frameworks already imported; with `lazy`, also those imported later."""
        for name in ("torch", "mlx.core"):
            if name in sys.modules:
                self.patcher.guarded(name, lambda name=name: self._on_import(name))
        if lazy:
            self.patcher.watch({"torch", "mlx.core"}, self._on_import)

    def remove(self) -> None:
        """Puts every original back (unless someone else replaced our wrapper since)."""
        self.patcher.restore()
        self._installed.clear()
        self._excluded.clear()

    # -- installing --------------------------------------------------------------------------
    def _on_import(self, name: str) -> None:
        module = sys.modules.get(name)
        if module is None:
            return
        if name == "torch":
            self._install_torch(module)
        elif name == "mlx.core":
            self._install_mlx(module)

    def _update_prefixes(self) -> None:
        self._is_library = LibraryClassifier()  # by path (library.py): the frameworks' folders too
        torch = sys.modules.get("torch")
        file = getattr(torch, "__file__", None)
        torch_dir = os.path.dirname(os.path.abspath(file)) + os.sep if file else None
        self._compiler_prefixes = tuple(torch_dir + d + os.sep for d in _TORCH_COMPILER_DIRS) if torch_dir else ()
        self._excluded.clear()  # in place: the wrappers hold this dict

    def _classify(self, file: str) -> int:
        if file.startswith(self._compiler_prefixes):
            return _COMPILER
        return _LIBRARY if self._is_library(file) else _USER

    def _install_torch(self, torch: ModuleType) -> None:
        if "torch" in self._installed:
            return
        self._installed.add("torch")
        self._update_prefixes()
        compiler = getattr(torch, "compiler", None)
        self._torch_is_compiling = getattr(compiler, "is_compiling", None) or _never
        for attr in TORCH_TENSOR_METHODS:
            self._patch(torch.Tensor, attr, f"Tensor.{attr}", self._tensor_wrapper)
        for sub, device in (("cuda", "cuda"), ("mps", "mps")):
            module = getattr(torch, sub, None)
            if module is None or not hasattr(module, "synchronize"):
                self.not_hooked[f"torch.{sub}.synchronize"] = f"torch.{sub} has no synchronize"
                continue
            attrs = _DEVICE_ATTRS[device]
            self._patch(
                module,
                "synchronize",
                f"torch.{sub}.synchronize",
                lambda name, orig, a=attrs: self._func_wrapper(name, orig, lambda: a, self._torch_is_compiling),
            )

    def _install_mlx(self, mx: ModuleType) -> None:
        if "mlx" in self._installed:
            return
        self._installed.add("mlx")
        self._update_prefixes()
        default_device = mx.default_device
        gpu = mx.gpu
        gpu_attrs, cpu_attrs = _DEVICE_ATTRS["gpu"], _DEVICE_ATTRS["cpu"]

        def device() -> dict[str, str]:
            return gpu_attrs if default_device().type == gpu else cpu_attrs

        def on_gpu() -> bool:
            return default_device().type == gpu

        for attr in ("eval", "synchronize"):
            self._patch(
                mx,
                attr,
                f"mx.{attr}",
                lambda name, orig: self._func_wrapper(name, orig, device),
            )
        for attr in MLX_ARRAY_METHODS:
            self._patch(
                mx.array,
                attr,
                f"array.{attr}",
                lambda name, orig: self._func_wrapper(name, orig, device, on_gpu_only=on_gpu),
            )

    def _patch(self, owner: Any, attr: str, name: str, make: Callable[[str, Any], Any]) -> None:
        self.patcher.patch(owner, attr, name, make)

    # -- the wrappers ------------------------------------------------------------------------
    # The caller walk, inlined in both wrappers (a method call costs ~0.2 us here): from the
    # wrapper's caller outwards, each frame's file is classified once (cached by file name: a str
    # caches its hash, a code object recomputes its own, ~1 us) as user code (the caller: stop),
    # library (go on) or torch's compiler machinery (a call made while Dynamo / FX / fake tensors
    # compile something, not a sync of the training: drop the record). The wrappers also call the
    # original without `*args` when there are none (a C method called through an empty `*args,
    # **kwargs` costs ~0.5 us more). Keep the two wrappers in step.
    def _tensor_wrapper(self, name: str, original: Any) -> Any:
        is_compiling = self._torch_is_compiling
        rows = self.recorder.rows
        rec = self.recorder
        busy = self._busy
        busy_add, busy_discard = busy.add, busy.discard
        excluded = self._excluded
        hooks = self
        getframe = sys._getframe
        now = _now
        cuda, mps = _DEVICE_ATTRS["cuda"], _DEVICE_ATTRS["mps"]

        def hooked(self: Any, *args: Any, **kwargs: Any) -> Any:
            # First: under torch.compile, Dynamo traces the original instead. Then a CPU tensor's
            # read waits for no device: it is not a sync, so it is not recorded.
            if is_compiling() or self.is_cpu:
                return original(self, *args, **kwargs)
            tid = get_ident()
            if tid in busy:
                return original(self, *args, **kwargs)
            busy_add(tid)
            try:
                if args or kwargs:
                    start = now()
                    out = original(self, *args, **kwargs)
                else:
                    start = now()
                    out = original(self)
                end = now()
            finally:
                busy_discard(tid)
            if self.is_cuda:
                attrs = cuda
            elif self.is_mps:
                attrs = mps
            else:
                attrs = {"device": self.device.type}
            caller = None
            frame: FrameType | None = getframe(1)
            while frame is not None:
                file = frame.f_code.co_filename
                where = excluded.get(file)
                if where is None:
                    where = excluded[file] = hooks._classify(file)
                if where == _USER:
                    caller = f"{file}:{frame.f_lineno}"
                    break
                if where == _COMPILER:
                    return out
                frame = frame.f_back
            rows.append((SYNC_KIND, name, start, end, rec.epoch, rec.batch, caller, attrs))
            return out

        return named(hooked, original, name)

    def _func_wrapper(
        self,
        name: str,
        original: Any,
        device: Callable[[], dict[str, str]],
        is_compiling: Callable[[], bool] | None = None,
        on_gpu_only: Callable[[], bool] | None = None,
    ) -> Any:
        rows = self.recorder.rows
        rec = self.recorder
        busy = self._busy
        busy_add, busy_discard = busy.add, busy.discard
        excluded = self._excluded
        hooks = self
        getframe = sys._getframe
        now = _now

        def hooked(*args: Any, **kwargs: Any) -> Any:
            if (is_compiling is not None and is_compiling()) or (on_gpu_only is not None and not on_gpu_only()):
                return original(*args, **kwargs)
            tid = get_ident()
            if tid in busy:
                return original(*args, **kwargs)
            busy_add(tid)
            try:
                if kwargs:
                    start = now()
                    out = original(*args, **kwargs)
                else:
                    start = now()
                    out = original(*args)
                end = now()
            finally:
                busy_discard(tid)
            caller = None
            frame: FrameType | None = getframe(1)
            while frame is not None:
                file = frame.f_code.co_filename
                where = excluded.get(file)
                if where is None:
                    where = excluded[file] = hooks._classify(file)
                if where == _USER:
                    caller = f"{file}:{frame.f_lineno}"
                    break
                if where == _COMPILER:
                    return out
                frame = frame.f_back
            rows.append((SYNC_KIND, name, start, end, rec.epoch, rec.batch, caller, device()))
            return out

        return named(hooked, original, name)


def _never() -> bool:
    return False


class SyncHookObserver:
    """The run observer: hooks in at `start`, out at `stop`; spans go to `session.recorder`."""

    name = "sync_hooks"

    def __init__(self, lazy: bool = True) -> None:
        self.lazy = lazy
        self.hooks: SyncHooks | None = None

    def start(self, session: RunSession) -> None:
        self.hooks = SyncHooks(session.recorder)
        self.hooks.install(lazy=self.lazy)
        session.recorder.sync_hooked = True

    def stop(self, session: RunSession) -> dict[str, Any]:
        hooks = self.hooks
        session.recorder.sync_hooked = False
        if hooks is None:
            return {"hooked": []}
        hooked = hooks.hooked
        hooks.remove()
        self.hooks = None
        calls: Counter[str] = Counter()
        devices: Counter[str] = Counter()
        seconds = 0.0
        for row in session.recorder.rows:
            if row[0] == SYNC_KIND and row[7] is not None and "device" in row[7]:
                calls[row[1]] += 1
                devices[row[7]["device"]] += 1
                seconds += (row[3] - row[2]) / 1e9
        return {
            "hooked": hooked,
            "not_hooked": hooks.not_hooked,
            "calls": dict(calls),
            "devices": dict(devices),
            "seconds": seconds,
            "notes": hooks.notes,
        }
