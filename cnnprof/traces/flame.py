"""Stack samples as time intervals: the flame chart over time (merged bars) and the call tree.

A sample row (`t_ns`, `dt_ns`, `stack_id`) covers `[t_ns, t_ns + dt_ns)` and charges it to the
stack `stack_id` (profiler/stacks.py: pyinstrument's convention, the time since the previous sample
goes to the stack seen at its end; consecutive samples tile the profiled time). Consecutive samples
with the same frame at the same depth, under the same parents, and without a gap in time, merge
into one bar: that is what makes a million 1 ms samples drawable (report) and loadable (Chrome /
Perfetto export).

numpy only: the reports and the exports use it, and neither imports a framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Two samples further apart than this (beyond their own dt) are not merged across the gap.
GAP_TOLERANCE_NS = 2_000_000


@dataclass(frozen=True)
class SampleIntervals:
    """The valid samples, sorted by time: start/end (ns since t0), stack id, weight (= dt)."""

    start_ns: np.ndarray
    end_ns: np.ndarray
    stack: np.ndarray

    @property
    def weight_ns(self) -> np.ndarray:
        return self.end_ns - self.start_ns

    def __len__(self) -> int:
        return len(self.stack)


@dataclass(frozen=True)
class FlameBars:
    """Merged bars, sorted by (start, depth): a parent always comes before its children."""

    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    depth: np.ndarray  # int32, 0 = the root frame
    frame: np.ndarray  # int32, index into stacks.json's frames

    def __len__(self) -> int:
        return len(self.frame)


def sample_intervals(samples: pd.DataFrame, n_stacks: int) -> SampleIntervals:
    """The samples whose stack id exists, as sorted intervals (corrupt rows are dropped)."""
    empty = np.zeros(0, dtype=np.int64)
    if samples.empty or not {"t_ns", "dt_ns", "stack_id"} <= set(samples.columns):
        return SampleIntervals(empty, empty, empty.astype(np.int32))
    t = samples["t_ns"].to_numpy(dtype=np.int64, na_value=-1)
    dt = samples["dt_ns"].to_numpy(dtype=np.int64, na_value=0)
    sid = samples["stack_id"].to_numpy(dtype=np.int64, na_value=-1)
    ok = (sid >= 0) & (sid < n_stacks) & (dt >= 0) & (t >= 0)
    t, dt, sid = t[ok], dt[ok], sid[ok]
    if len(t) and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, dt, sid = t[order], dt[order], sid[order]
    return SampleIntervals(t, t + dt, sid.astype(np.int32))


def stack_matrix(stacks: list[list[int]], n_frames: int) -> np.ndarray:
    """Stacks as a (n_stacks, max_depth) int32 matrix, root first, padded with -1. A frame id
    outside the frame table ends its stack there (a corrupt stacks.json still draws)."""
    depth = max((len(s) for s in stacks), default=0)
    matrix = np.full((len(stacks), max(depth, 1)), -1, dtype=np.int32)
    for i, stack in enumerate(stacks):
        for d, frame in enumerate(stack):
            if not isinstance(frame, int) or not 0 <= frame < n_frames:
                break
            matrix[i, d] = frame
    return matrix


def merge_samples(intervals: SampleIntervals, matrix: np.ndarray, gap_ns: int = GAP_TOLERANCE_NS) -> FlameBars:
    """The flame chart over time: one bar per frame per uninterrupted stretch of samples in which
    it stays at the same depth under the same parents. Vectorised one depth at a time."""
    n = len(intervals)
    z = np.zeros(0, dtype=np.int64)
    if n == 0:
        return FlameBars(z, z, z.astype(np.int32), z.astype(np.int32))
    start, end, sid = intervals.start_ns, intervals.end_ns, intervals.stack
    contiguous = np.zeros(n, dtype=bool)
    contiguous[1:] = start[1:] - end[:-1] <= gap_ns
    # Runs of the same stack without a gap: the unit of work below (often several samples each).
    new_run = ~contiguous.copy()
    new_run[1:] |= sid[1:] != sid[:-1]
    new_run[0] = True
    run_first = np.flatnonzero(new_run)
    run_last = np.append(run_first[1:], n) - 1
    run_stack = sid[run_first]
    run_start = start[run_first]
    run_end = end[run_last]
    run_joined = contiguous[run_first]  # continues the previous run in time
    n_runs = len(run_first)

    starts_out, ends_out = [z], [z]
    depth_out, frame_out = [z.astype(np.int32)], [z.astype(np.int32)]
    cont = run_joined.copy()
    prev = np.empty(n_runs, dtype=np.int32)
    for d in range(matrix.shape[1]):
        col = matrix[run_stack, d]
        present = col >= 0
        if not present.any():
            break
        prev[0] = -1
        prev[1:] = col[:-1]
        cont &= (col == prev) & present
        first = np.flatnonzero(present & ~cont)
        breaks = np.flatnonzero(~cont)
        nxt = np.searchsorted(breaks, first, side="right")
        last = np.where(nxt < len(breaks), breaks[np.minimum(nxt, len(breaks) - 1)], n_runs) - 1
        starts_out.append(run_start[first])
        ends_out.append(run_end[last])
        depth_out.append(np.full(len(first), d, dtype=np.int32))
        frame_out.append(col[first])
    s = np.concatenate(starts_out)
    e = np.concatenate(ends_out)
    dep = np.concatenate(depth_out)
    fr = np.concatenate(frame_out).astype(np.int32)
    order = np.lexsort((dep, s))
    return FlameBars(s[order], e[order], dep[order], fr[order])


@dataclass(frozen=True)
class CallTree:
    """The distinct stacks as a prefix tree: node i has `parent[i]` (-1 for roots) and `frame[i]`;
    parents come before their children. `leaf[stack_id]` is the node a stack ends at (-1: empty).
    `first[i]` is False where an ancestor of node i has the same frame (recursion), so that summing
    a function's total time over its `first` nodes counts each instant once."""

    parent: np.ndarray
    frame: np.ndarray
    leaf: np.ndarray
    first: np.ndarray


def call_tree(matrix: np.ndarray) -> CallTree:
    index: dict[tuple[int, int], int] = {}
    parent: list[int] = []
    frame: list[int] = []
    first: list[bool] = []
    frames_above: list[frozenset[int]] = []
    leaf = np.full(matrix.shape[0], -1, dtype=np.int32)
    for sid, row in enumerate(matrix.tolist()):
        node = -1
        for f in row:
            if f < 0:
                break
            key = (node, f)
            child = index.get(key)
            if child is None:
                child = index[key] = len(parent)
                above = frames_above[node] if node >= 0 else frozenset()
                parent.append(node)
                frame.append(f)
                first.append(f not in above)
                frames_above.append(above | {f})
            node = child
        leaf[sid] = node
    return CallTree(
        np.asarray(parent, dtype=np.int32),
        np.asarray(frame, dtype=np.int32),
        leaf,
        np.asarray(first, dtype=bool),
    )


@dataclass(frozen=True)
class Functions:
    """stacks.json's frames are lines of functions; these are the functions themselves, keyed by
    (file, function, first line): the unit of a function-level flame chart and call tree."""

    function: list[str]
    file: list[str]
    first_line: list[int]
    library: list[bool]
    of_frame: np.ndarray  # frame id -> function id

    def __len__(self) -> int:
        return len(self.function)

    def where(self, i: int) -> str:
        file, line = self.file[i], self.first_line[i]
        return f"{file}:{line}" if file and line else file


def functions(frames: list[dict[str, Any]]) -> Functions:
    index: dict[tuple[str, str, int], int] = {}
    out = Functions([], [], [], [], np.zeros(len(frames), dtype=np.int32))
    for i, frame in enumerate(frames):
        frame = frame if isinstance(frame, dict) else {}
        function = str(frame.get("function") or "?")
        file = str(frame.get("file") or "")
        line = frame.get("first_line", frame.get("line"))
        line = line if isinstance(line, int) and not isinstance(line, bool) else 0
        key = (file, function, line)
        fid = index.get(key)
        if fid is None:
            fid = index[key] = len(out.function)
            out.function.append(function)
            out.file.append(file)
            out.first_line.append(line)
            out.library.append(bool(frame.get("library")))
        out.of_frame[i] = fid
    return out


def function_matrix(stacks_json: dict[str, Any], fold_own: bool = False) -> tuple[np.ndarray, Functions]:
    """(stack matrix of function ids, the functions) from a stacks.json dict. With `fold_own`,
    cnnprof's own frames are taken out of every stack (`is_own_frame`), the frames below them
    move up; a stack of nothing else becomes the one function `OWN_FUNCTION`."""
    frames = stacks_json.get("frames") or []
    stacks = stacks_json.get("stacks") or []
    funcs = functions(frames if isinstance(frames, list) else [])
    matrix = stack_matrix([s if isinstance(s, list) else [] for s in stacks], len(funcs.of_frame))
    if funcs.of_frame.size:
        matrix = np.where(matrix >= 0, funcs.of_frame[np.maximum(matrix, 0)], -1).astype(np.int32)
    if fold_own:
        matrix = _fold(matrix, funcs)
    return matrix, funcs


# The machinery that observes a run, never the user's work: the profiler package (the sync hooks'
# `hooked` wrapper, the sampler's `on_sigalrm`), the CLI that starts it, and runpy, which runs a
# profiled script. cnnprof's training loops (models/, train.py) are the work and stay.
OWN_DIRS = ("cnnprof/profiler/",)
OWN_FILES = ("cnnprof/cli.py", "cnnprof/__main__.py")
OWN_FUNCTION = "[cnnprof itself]"


def is_own_frame(file: str, library: bool) -> bool:
    path = file.replace("\\", "/")
    if any(path.startswith(d) or f"/{d}" in path for d in OWN_DIRS):
        return True
    if any(path == f or path.endswith(f"/{f}") for f in OWN_FILES):
        return True
    return library and (path.endswith("/runpy.py") or path == "runpy.py")


def _fold(matrix: np.ndarray, funcs: Functions) -> np.ndarray:
    own = np.array([is_own_frame(f, lib) for f, lib in zip(funcs.file, funcs.library)], dtype=bool)
    if not own.any() or matrix.size == 0:
        return matrix
    keep = (matrix >= 0) & ~own[np.maximum(matrix, 0)]
    # Left-align each row's kept frames (a stable sort puts kept ones first, in order).
    order = np.argsort(~keep, axis=1, kind="stable")
    folded = np.where(np.take_along_axis(keep, order, axis=1), np.take_along_axis(matrix, order, axis=1), -1)
    emptied = ~keep.any(axis=1) & (matrix[:, 0] >= 0)
    if emptied.any():
        funcs.function.append(OWN_FUNCTION)
        funcs.file.append("")
        funcs.first_line.append(0)
        funcs.library.append(True)
        folded[emptied, 0] = len(funcs.function) - 1
    width = max(int((folded >= 0).sum(axis=1).max()), 1)
    return np.ascontiguousarray(folded[:, :width]).astype(np.int32)
