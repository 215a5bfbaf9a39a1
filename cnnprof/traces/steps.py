"""Training steps from the framework hooks' raw spans, and each step's time split.

The step hooks (profiler/steps.py) record what they see as spans of kind `hook`: `optimizer`
(an optimizer step: torch's step pre -> post hook, MLX's `Optimizer.update`), `backward`
(`Tensor.backward` / `torch.autograd.backward`), `data` (one `next()` on a DataLoader iterator),
`first_forward` (the start of a top-level module call, until the first optimizer step),
`grad` (a call of an MLX `value_and_grad` function), `compiled` (a call of an `mx.compile`d
function that updates an optimizer), `mode` (`Module.train(False)` / `.eval()`: attrs `{"train":
bool}`) and `mark` (a step boundary set by hand: `cnnprof.step()`). Steps are derived from them
here, as a pure function of the spans, so that a run killed before its end (no step spans written
yet) gets the same steps on read.

A step ends where the training loop's update ends:

* with `mark`s: at each mark (the marks are the step boundaries, as torch.profiler's `step()`);
* torch: at the end of each optimizer step;
* MLX: at the end of the first `mx.eval` after the update (the update itself only builds the
  graph; the eval computes it), or at the update's end when the loop evaluates later (lazily).

Steps tile the training window: a step starts where the previous one ended, so what a loop does
after its update (reading the loss with `.item()`, logging) is in the next step. Two cuts: the
first step starts at its batch fetch (or its first backward / update: whatever came first after
setup), and time spent with the model in eval mode (a validation loop between `model.eval()` and
`model.train()`) is left out of the step that follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .streams import SpanRow, spans_to_columns

HOOK_KIND = "hook"
STEP_KIND = "step"
SETUP_KIND = "setup"
# The parts of a step, in the order the split lists them.
PARTS = ("data", "forward", "backward", "optimizer", "sync", "other")
# Span kinds of cnnprof's own loops that are parts of a step (a compiled MLX step counts as forward).
_LOOP_KINDS = ("data", "forward", "backward", "optimizer", "compiled")
# Hooks that are the step's own work (not its batch fetch).
_STEP_WORK = ("backward", "optimizer", "grad", "compiled")
_EMPTY = np.zeros((0, 2), dtype=np.int64)


def _intervals(spans: pd.DataFrame, mask: pd.Series | np.ndarray) -> np.ndarray:
    sel = spans[mask]
    if sel.empty:
        return _EMPTY
    out = sel[["start_ns", "end_ns"]].to_numpy(dtype=np.int64)
    return out[np.argsort(out[:, 0], kind="stable")]


def _hooks(spans: pd.DataFrame, name: str) -> np.ndarray:
    return _intervals(spans, (spans["kind"] == HOOK_KIND) & (spans["name"] == name))


def eval_intervals(spans: pd.DataFrame) -> np.ndarray:
    """[model.eval(), model.train()) intervals from the `mode` hooks (an eval mode never left, at
    the end of training, cuts nothing)."""
    modes = spans[(spans["kind"] == HOOK_KIND) & (spans["name"] == "mode")].sort_values("start_ns")
    out: list[tuple[int, int]] = []
    since: int | None = None
    for start, attrs in zip(modes["start_ns"].tolist(), modes["attrs"].tolist(), strict=False):
        training = not (isinstance(attrs, str) and '"train": false' in attrs)
        if not training and since is None:
            since = int(start)
        elif training and since is not None:
            out.append((since, int(start)))
            since = None
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def step_ends(spans: pd.DataFrame, sync_names: Sequence[str] = ("mx.eval",)) -> np.ndarray:
    """The end of every step (ns, sorted), from marks, else optimizer steps (+ the MLX eval)."""
    marks = _hooks(spans, "mark")
    if len(marks):
        return marks[:, 1].copy()
    updates = merge_intervals(np.concatenate([_hooks(spans, "optimizer"), _hooks(spans, "compiled")]))
    if not len(updates):
        return np.zeros(0, dtype=np.int64)
    ends = updates[:, 1].copy()
    evals = _intervals(spans, (spans["kind"] == "sync") & spans["name"].isin(list(sync_names)))
    if len(evals):
        # The first eval that starts after an update and before the next one ends that step.
        next_update = np.append(updates[1:, 0], np.iinfo(np.int64).max)
        i = np.searchsorted(evals[:, 0], ends, side="left")
        ok = i < len(evals)
        hit = np.zeros(len(ends), dtype=bool)
        hit[ok] = evals[i[ok], 0] < next_update[ok]
        ends[hit] = evals[i[hit], 1]
    return ends


def merge_intervals(intervals: np.ndarray, gap_ns: int = 0) -> np.ndarray:
    """Sorted union of intervals (two optimizers stepped back to back count as one update), with
    intervals less than `gap_ns` apart joined too."""
    if not len(intervals):
        return _EMPTY
    intervals = intervals[np.argsort(intervals[:, 0], kind="stable")]
    out = [list(intervals[0])]
    for s, e in intervals[1:]:
        if s <= out[-1][1] + gap_ns:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return np.array(out, dtype=np.int64)


def derive_steps(spans: pd.DataFrame) -> np.ndarray:
    """[start, end) of every training step, in order (an empty (0, 2) array when none).

    cnnprof's own loops mark each training batch themselves (spans `batch` / `train`): those are
    the steps there, whatever the hooks saw (a CUDA-graphed step replays without calling the
    optimizer; its capture calls it a few times)."""
    if spans.empty or "kind" not in spans:
        return _EMPTY
    batches = _intervals(spans, (spans["kind"] == "batch") & (spans["name"] == "train"))
    if len(batches):
        return batches
    ends = step_ends(spans)
    if not len(ends):
        return _EMPTY
    starts = np.empty(len(ends), dtype=np.int64)
    starts[1:] = ends[:-1]
    # The first step starts with the fetch of its own batch (the last fetch before its forward,
    # else before its first backward or update), else with that forward, backward or update.
    work = _intervals(spans, (spans["kind"] == HOOK_KIND) & spans["name"].isin(list(_STEP_WORK)))
    work = work[work[:, 0] < ends[0]]
    # Marked by hand with no hooked work before the first mark: the step began with the run.
    no_work = 0 if len(_hooks(spans, "mark")) else int(ends[0])
    cut = int(work[:, 0].min()) if len(work) else no_work
    forwards = _hooks(spans, "first_forward")
    forwards = forwards[forwards[:, 0] <= cut] if len(forwards) else forwards
    cut = int(forwards[-1, 0]) if len(forwards) else cut
    fetches = _hooks(spans, "data")
    fetched = fetches[fetches[:, 1] <= cut] if len(fetches) else fetches
    starts[0] = int(fetched[-1, 0]) if len(fetched) else cut
    evals = eval_intervals(spans)
    for _, e in evals:
        # A validation loop inside a step's span: the step starts when training resumes.
        i = np.searchsorted(ends, e, side="left")
        if i < len(ends) and starts[i] < e <= ends[i]:
            starts[i] = e
    return np.stack([starts, ends], axis=1)


def _covered(intervals: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Length of the union of `intervals` lying before each time in `at` (vectorised)."""
    merged = merge_intervals(intervals)
    if not len(merged):
        return np.zeros(len(at), dtype=np.int64)
    lengths = merged[:, 1] - merged[:, 0]
    before = np.concatenate([[0], np.cumsum(lengths)])
    i = np.searchsorted(merged[:, 0], at, side="right")  # intervals starting at or before t
    partial = np.zeros(len(at), dtype=np.int64)
    inside = i > 0
    j = i[inside] - 1
    partial[inside] = np.minimum(at[inside], merged[j, 1]) - merged[j, 0]
    base = before[np.maximum(i - 1, 0)]
    base[~inside] = 0
    return base + np.maximum(partial, 0)


def overlap(intervals: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """ns of each step [start, end) covered by the union of `intervals`."""
    if not len(steps):
        return np.zeros(0, dtype=np.int64)
    return _covered(intervals, steps[:, 1]) - _covered(intervals, steps[:, 0])


def split_steps(spans: pd.DataFrame, steps: np.ndarray, sync_spans: pd.DataFrame) -> dict[str, np.ndarray]:
    """Seconds of each part (PARTS) in each step.

    `data`, `backward` and `optimizer` are the hooks' spans (or a loop's own spans of those kinds);
    `sync` is the accelerator syncs (`sync_spans`, already filtered by device); `forward` is the
    loop's own forward spans where it has them, else the time from the step's start to its first
    backward (or gradient call) that is neither data nor sync; `other` is the rest (logging, the
    step's own Python between the parts).
    """

    def parts_of(names: Sequence[str]) -> np.ndarray:
        mask = ((spans["kind"] == HOOK_KIND) & spans["name"].isin(list(names))) | spans["kind"].isin(
            [n for n in names if n in _LOOP_KINDS]
        )
        return _intervals(spans, mask)

    sync = sync_spans[["start_ns", "end_ns"]].to_numpy(dtype=np.int64) if len(sync_spans) else _EMPTY
    out: dict[str, np.ndarray] = {}
    out["data"] = overlap(parts_of(["data"]), steps)
    out["backward"] = overlap(parts_of(["backward"]), steps)
    out["optimizer"] = overlap(parts_of(["optimizer"]), steps)
    out["sync"] = overlap(sync, steps)
    forward = parts_of(["forward", "grad", "compiled"])
    if len(forward):
        out["forward"] = overlap(forward, steps)
    else:
        # Up to the first backward of each step: forward and loss, less what was data or sync.
        bwd = parts_of(["backward"])
        first = steps[:, 1].copy()
        if len(bwd):
            i = np.searchsorted(bwd[:, 0], steps[:, 0], side="left")
            ok = i < len(bwd)
            cand = np.where(ok, bwd[np.minimum(i, len(bwd) - 1), 0], steps[:, 1])
            first = np.where(ok & (cand < steps[:, 1]), cand, steps[:, 0])
        head = np.stack([steps[:, 0], np.maximum(first, steps[:, 0])], axis=1)
        both = merge_intervals(np.concatenate([parts_of(["data"]), sync]))
        out["forward"] = np.maximum((head[:, 1] - head[:, 0]) - overlap(both, head), 0)
    duration = steps[:, 1] - steps[:, 0]
    known = out["data"] + out["forward"] + out["backward"] + out["optimizer"] + out["sync"]
    out["other"] = np.maximum(duration - known, 0)
    return {k: out[k] / 1e9 for k in PARTS}


def step_rows(rows: Sequence[SpanRow], t0_ns: int) -> tuple[list[SpanRow], dict[str, Any]]:
    """The span rows (absolute times) derived from the hooks' `rows`: a `step` span per step
    (attrs: its split), the `setup` span (run start -> first step) and an `eval mode` phase per
    validation loop; and what run.json's step_hooks section says of them."""
    spans = pd.DataFrame(spans_to_columns(rows, t0_ns))
    found = derive_steps(spans)
    if not len(found):
        return [], {"steps": 0}
    syncs = spans[spans["kind"] == "sync"]
    syncs = syncs[~syncs["attrs"].fillna("").str.contains('"device": "cpu"')]
    split = split_steps(spans, found, syncs)
    out: list[SpanRow] = []
    for i, (start, end) in enumerate(found.tolist()):
        attrs = {f"{part}_s": round(float(split[part][i]), 9) for part in PARTS}
        out.append((STEP_KIND, "train", start + t0_ns, end + t0_ns, None, i, None, attrs))
    out.append((SETUP_KIND, "setup", t0_ns, int(found[0, 0]) + t0_ns, None, None, None, None))
    # Between model.eval() and model.train(): a validation (or test) loop, a phase of its own.
    evals = eval_intervals(spans)
    for start, end in evals.tolist():
        out.append(("phase", "eval mode", start + t0_ns, end + t0_ns, None, None, None, None))
    return out, {"steps": len(found), "eval_phases": len(evals)}
