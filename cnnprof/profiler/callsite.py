"""The user's line that led to an event raised inside a framework (a compile, a CPU fallback):
the first frame outside the frameworks and cnnprof's own machinery."""

from __future__ import annotations

from types import FrameType

# Frames of these modules (and their submodules) are never the call site. cnnprof.models.loops
# count as user code: their lines are what a reader of cnnprof's own runs acts on.
SKIPPED = ("mlx", "torch", "warnings", "functools", "contextlib", "cnnprof.profiler")


def _skipped(frame: FrameType) -> bool:
    module = frame.f_globals.get("__name__", "")
    return any(module == m or module.startswith(m + ".") for m in SKIPPED)


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
