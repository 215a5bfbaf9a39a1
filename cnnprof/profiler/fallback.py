"""MPS CPU fallbacks as spans of kind `fallback` (the `cpu-fallback` rule reads them).

With `PYTORCH_ENABLE_MPS_FALLBACK=1`, an op without an MPS kernel runs on the CPU (inputs copied
off the GPU, results back). PyTorch says so in a warning, from `mps_fallback` in
aten/src/ATen/mps/MPSFallback.mm (pytorch/pytorch):

    TORCH_WARN_ONCE("The operator '", op.schema().operator_name(), "' is not currently supported ",
                    "on the MPS backend and will fall back to run on the CPU.",
                    " This may have performance implications.");

which reaches Python as a UserWarning ending in "(Triggered internally at .../MPSFallback.mm:N.)",
attributed to the Python line that called the op. `TORCH_WARN_ONCE` warns once per process, for
the first op only, unless `torch.set_warn_always(True)`: on a machine with MPS, the observer turns
that on for the run (and back after), so every fallback call warns. Python's own filters would
still show one per line: a filter `always` for this message alone is put first, and a
`warnings.showwarning` hook records each one (op, time, the user's call site and stack) and
passes the first per op on to the previous hook, so the user sees what they saw before, once.
Everything is put back at the end (the filter entry, the hook if it is still ours, warn_always).
Not covered: a user filter that ignored these warnings is overridden for the first one per op.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from .callsite import call_site, user_stack
from .patching import Patcher

if TYPE_CHECKING:
    from .session import RunSession

KIND = "fallback"
MESSAGE = re.compile(
    r"The operator '(?P<op>[^']+)' is not currently supported on the MPS backend and will fall back to run on the CPU"
)
_FILTER_REGEX = r".*is not currently supported on the MPS backend and will fall back to run on the CPU"


def fallback_op(message: str) -> str | None:
    """The op name of a fallback warning's text ('aten::bitwise_and.Tensor_out'), else None."""
    match = MESSAGE.search(message)
    return match.group("op") if match else None


def _warned_frame(frame: FrameType, filename: str, lineno: int) -> FrameType:
    """The frame the warning is attributed to (the Python line that called the op), from which
    the user's call site is sought outwards; the innermost frame if it is not on the stack."""
    probe: FrameType | None = frame
    while probe is not None:
        if probe.f_code.co_filename == filename and probe.f_lineno == lineno:
            return probe
        probe = probe.f_back
    return frame


class FallbackObserver:
    """Records MPS CPU-fallback warnings for the session (session.py's Observer protocol)."""

    name = "fallbacks"

    def __init__(self) -> None:
        self._session: RunSession | None = None
        self._previous: Any = None
        self._filter: tuple[Any, ...] | None = None
        self.patcher = Patcher()
        self._torch: ModuleType | None = None
        self._warn_always_before: bool | None = None
        self._shown: set[str] = set()
        self.count = 0

    def start(self, session: RunSession) -> None:
        self._session = session
        warnings.filterwarnings("always", message=_FILTER_REGEX)
        self._filter = warnings.filters[0]
        self._previous = warnings.showwarning
        warnings.showwarning = self._showwarning
        if "torch" in sys.modules:
            self.patcher.guarded("torch", lambda: self._on_torch("torch"))
        else:
            self.patcher.watch({"torch"}, self._on_torch)

    def _on_torch(self, name: str) -> None:
        torch = sys.modules[name]
        mps = getattr(getattr(torch, "backends", None), "mps", None)
        if mps is None or not mps.is_available():
            return  # no MPS, no fallback: leave torch's other warn-once warnings alone
        self._torch = torch
        self._warn_always_before = bool(torch.is_warn_always_enabled())
        torch.set_warn_always(True)

    def _showwarning(
        self, message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        op = fallback_op(str(message))
        if op is not None and self._session is not None:
            now = time.perf_counter_ns()
            frame = _warned_frame(sys._getframe(1), filename, lineno)
            rec = self._session.recorder
            attrs = {"op": op, "warning_at": f"{filename}:{lineno}", "stack": user_stack(frame)}
            rec.rows.append((KIND, op, now, now, rec.epoch, rec.batch, call_site(frame), attrs))
            self.count += 1
            if op in self._shown:
                return
            self._shown.add(op)
        self._previous(message, category, filename, lineno, file, line)

    def stop(self, session: RunSession) -> dict[str, Any]:
        self.patcher.restore()  # the import watcher
        if warnings.showwarning == self._showwarning:
            warnings.showwarning = self._previous
        if self._filter in warnings.filters:
            warnings.filters.remove(self._filter)
            warnings._filters_mutated()  # type: ignore[attr-defined]  # what filterwarnings() itself calls
        if self._torch is not None and self._warn_always_before is not None:
            self._torch.set_warn_always(self._warn_always_before)
        self._session = None
        return {"calls": self.count, "ops": sorted(self._shown), "warn_always": self._torch is not None}
