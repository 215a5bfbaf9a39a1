"""The stack samples for the page: functions and their colour categories, the call tree, the
(time slice, node, weight) rows a range's call tree is summed from, and the merged flame bars;
and the same call-tree data over every process of the run (the main one and its children), for
the page's process picker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...traces.flame import (
    OWN_FUNCTION,
    CallTree,
    FlameBars,
    Functions,
    SampleIntervals,
    call_tree,
    function_matrix,
    is_own_frame,
    merge_samples,
    sample_intervals,
)
from ...traces.processes import SECTION as PROCESS_SECTION
from ...traces.processes import ProcessSamples
from ...traces.reader import RunData
from .packing import index_kind, pack
from .style import CATEGORY_COLORS, PALETTE

FLAME_EMBED = 100_000  # merged flame bars embedded; the page draws at most FLAME_DRAW at a time
FLAME_DRAW = 3000
FLAME_MAX_DEPTH = 64
SAMPLE_ROWS = 300_000  # (time bucket, node, weight) rows for the range call tree


@dataclass
class StackData:
    payload: dict[str, Any]  # for the page's script
    depth: int  # of the deepest drawn flame bar, + 1


def category(file: str, library: bool) -> str:
    if file.startswith("<"):
        return "built-in"
    for pkg in ("torch", "mlx", "numpy"):
        if f"/{pkg}/" in file or file.startswith(f"{pkg}/"):
            return pkg
    if "site-packages" in file or "dist-packages" in file:
        return "other libraries"
    if "cnnprof/" in file and library:
        return "cnnprof"
    return "python stdlib" if library else "your code"


PROCESS_FILE = "<process>"  # the file of the one-per-process root frame of the all-process call tree


@dataclass
class Prepared:
    """Stack samples made ready for a flame chart or a call tree: the function-level stack matrix
    (cnnprof's own frames folded away), the functions, and the samples as intervals."""

    matrix: np.ndarray
    funcs: Functions
    intervals: SampleIntervals


def prepare(stacks: dict[str, Any], samples: pd.DataFrame, notes: list[str]) -> Prepared | None:
    if samples.empty or not stacks.get("stacks"):
        return None
    matrix, funcs = function_matrix(stacks, fold_own=True)
    own = {f for f, lib in zip(funcs.file, funcs.library) if is_own_frame(f, lib)}
    if own:
        notes.append(
            "flame chart and call trees: cnnprof's own frames (" + ", ".join(sorted(own)[:4])
            + (", ..." if len(own) > 4 else "") + ") are folded away; stacks.json keeps them"
        )
    intervals = sample_intervals(samples, matrix.shape[0])
    return Prepared(matrix, funcs, intervals) if len(intervals) else None


def categories(funcs: Functions) -> list[str]:
    return [
        "cnnprof" if fn == OWN_FUNCTION else "process" if f == PROCESS_FILE else category(f, lib)
        for fn, f, lib in zip(funcs.function, funcs.file, funcs.library)
    ]


def stack_data(run: RunData, t_end: float, notes: list[str]) -> StackData | None:
    prepared = prepare(run.stacks, run.samples, notes)
    if prepared is None:
        return None
    bars = merge_samples(prepared.intervals, prepared.matrix)
    payload = _tree_payload(prepared, call_tree(prepared.matrix), t_end, notes)
    payload["flame"] = _flame_payload(bars, notes)
    depth = int(min(FLAME_MAX_DEPTH, (bars.depth.max() + 1) if len(bars) else 1))
    return StackData(payload, depth)


def process_tree(run: RunData, children: list[ProcessSamples], t_end: float) -> dict[str, Any] | None:
    """The call-tree data of every process at once, for the page's process picker: each process's
    stacks under a root frame of its own (its label), so that the tree of all of them has one
    root per process, and the tree of one process is that root's subtree. `procs` lists
    (label, root node) per process, the main process first."""
    main_pid = run.record.section(PROCESS_SECTION).get("main_pid")
    sources = [(f"main process (pid {main_pid})" if main_pid else "main process", run.samples, run.stacks)]
    sources += [(p.label, p.samples, p.stacks) for p in children]
    frames: list[dict[str, Any]] = []
    stacks: list[list[int]] = []
    tables: list[pd.DataFrame] = []
    for label, samples, proc_stacks in sources:
        if samples.empty or not {"t_ns", "dt_ns", "stack_id"} <= set(samples.columns):
            continue
        root = len(frames)
        frames.append({"function": label, "file": PROCESS_FILE, "line": 0, "library": False})
        offset = len(frames)
        frames += [f if isinstance(f, dict) else {} for f in proc_stacks.get("frames") or []]
        first_stack = len(stacks)
        for stack in proc_stacks.get("stacks") or []:
            ids = stack if isinstance(stack, list) else []
            stacks.append([root] + [offset + f if isinstance(f, int) and f >= 0 else -1 for f in ids])
        table = samples[["t_ns", "dt_ns", "stack_id"]].copy()
        sid = table["stack_id"].to_numpy(dtype=np.int64, na_value=-1)
        table["stack_id"] = np.where((sid >= 0) & (sid < len(stacks) - first_stack), sid + first_stack, -1)
        tables.append(table)
    prepared = prepare({"frames": frames, "stacks": stacks}, pd.concat(tables) if tables else pd.DataFrame(), [])
    if prepared is None:
        return None
    tree = call_tree(prepared.matrix)
    payload = _tree_payload(prepared, tree, t_end, [])
    roots = [i for i in range(len(tree.parent)) if tree.parent[i] < 0]
    payload["procs"] = [[prepared.funcs.function[int(tree.frame[i])], i] for i in roots]
    return payload


def _tree_payload(prepared: Prepared, tree: CallTree, t_end: float, notes: list[str]) -> dict[str, Any]:
    """Functions, colour categories, the call tree and its (time slice, node, weight) rows."""
    funcs, intervals = prepared.funcs, prepared.intervals
    cats = categories(funcs)
    cat_names = sorted(set(cats), key=lambda c: list(CATEGORY_COLORS).index(c) if c in CATEGORY_COLORS else 99)
    cat_index = {c: i for i, c in enumerate(cat_names)}

    # Call tree rows: (time bucket, node, weight), as fine in time as SAMPLE_ROWS allows.
    node = tree.leaf[intervals.stack]
    ok = node >= 0
    start, weight, node = intervals.start_ns[ok], intervals.weight_ns[ok], node[ok]
    span = max(t_end * 1e9, float(intervals.end_ns.max()), 1.0)
    n_nodes = max(len(tree.parent), 1)
    rows = None
    for buckets in (40000, 20000, 10000, 5000, 2500, 1200, 600, 300, 150, 60, 20, 1):
        b = np.minimum((start / span * buckets).astype(np.int64), buckets - 1)
        key = b * n_nodes + node
        uniq, inverse = np.unique(key, return_inverse=True)
        if len(uniq) <= SAMPLE_ROWS or buckets == 1:
            w = np.bincount(inverse, weights=weight)
            rows = (uniq // n_nodes, uniq % n_nodes, w, buckets)
            break
    assert rows is not None
    ub, un, uw, buckets = rows
    bucket_ns = span / buckets
    if buckets < 40000:
        notes.append(
            f"selection call tree: samples aggregated per {bucket_ns / 1e6:,.1f} ms slice "
            f"({len(intervals):,} samples, {len(un):,} rows); a range's edges are prorated"
        )
    return {
        "funcs": {
            "name": funcs.function,
            "where": [funcs.where(i) for i in range(len(funcs))],
            "cat": [cat_index[c] for c in cats],
        },
        "cats": [[c, CATEGORY_COLORS.get(c, PALETTE[i % len(PALETTE)])] for i, c in enumerate(cat_names)],
        "tree": {
            "parent": pack(tree.parent, "i4"),
            "func": pack(tree.frame, index_kind(len(funcs))),
            "first": pack(tree.first, "u1"),
        },
        "rows": {
            "bucket_us": bucket_ns / 1e3,
            "count": pack(np.bincount(ub, minlength=buckets), "u4"),
            "n": pack(un, index_kind(n_nodes)),
            "w": pack(np.round(uw / 1e3), "u4"),
        },
        "sampled_us": int(weight.sum() // 1000),
        "n_samples": len(intervals),
    }


def _flame_payload(bars: FlameBars, notes: list[str]) -> dict[str, Any]:
    keep = bars.depth < FLAME_MAX_DEPTH
    dur = (bars.end_ns - bars.start_ns)[keep]
    idx = np.flatnonzero(keep)
    if len(idx) > FLAME_EMBED:
        top = np.argpartition(-dur, FLAME_EMBED - 1)[:FLAME_EMBED]
        threshold = dur[top].min()
        notes.append(
            f"flame chart: the {FLAME_EMBED:,} longest of {len(idx):,} merged bars are kept (≥ "
            f"{threshold / 1e6:,.2f} ms); the call tree of a selection uses every sample"
        )
        idx = np.sort(idx[top])
    s = bars.start_ns[idx] // 1000
    d = np.maximum((bars.end_ns[idx] - bars.start_ns[idx]) // 1000, 1)
    n_funcs = int(bars.frame.max()) + 1 if len(bars) else 1
    return {
        "s": pack(s, "u4", delta=True),
        "d": pack(d, "u4"),
        "z": pack(bars.depth[idx], "u1"),
        "f": pack(bars.frame[idx], index_kind(n_funcs)),
        "draw": FLAME_DRAW,
    }
