"""The user's line that led to an event raised inside a framework (a compile, a CPU fallback):
the first frame outside the frameworks and cnnprof's own machinery."""

from __future__ import annotations

import os
import sys
from types import FrameType

# Frames of these modules (and their submodules) are never the call site. cnnprof.models.loops
# count as user code: their lines are what a reader of cnnprof's own runs acts on.
SKIPPED = ("mlx", "torch", "warnings", "functools", "contextlib", "cnnprof.profiler")


def _skipped(frame: FrameType) -> bool:
    module = frame.f_globals.get("__name__", "")
    if any(module == m or module.startswith(m + ".") for m in SKIPPED):
        return True
    # Code a framework generates at run time (AOT autograd's backward wrappers) runs with globals
    # of its own: told by its file, which names a file inside the framework's package.
    file = frame.f_code.co_filename
    return any(file.startswith(root) for root in _framework_dirs())


def _framework_dirs() -> tuple[str, ...]:
    roots = []
    for name in ("torch", "mlx"):
        module = sys.modules.get(name)
        for path in getattr(module, "__path__", None) or []:
            roots.append(os.path.join(path, ""))
    return tuple(roots)


def call_site(frame: FrameType | None) -> str | None:
    """file:line of the first frame, from `frame` outwards, that is user code."""
    while frame is not None:
        if not _skipped(frame):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def user_stack(frame: FrameType | None, limit: int = 8) -> list[str]:
    """Up to `limit` user frames from `frame` outwards, innermost first: "file:line function"."""
    out: list[str] = []
    while frame is not None and len(out) < limit:
        if not _skipped(frame):
            out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return out
