"""A job directory prepared once for the job rules (rank-imbalance, comm-bound) and the job report:
each rank's spans on the job's time axis, its steady-state steps, and the time it spent in
collectives (the spans of kind `collective` and the `Work.wait` syncs) inside each step.

Steps: each rank's steady-state steps as the run diagnosis finds them (context.RunView: the step
spans or the steps derived from the framework hooks, less warm-up); for a rank without any, its most
frequent collective call site (file:line), one step from the end of one call to the end of the next (a
collective ends at about the same time on every rank, so these windows line up across ranks), less
the first.

Per step, `comm` is the union of the collective and `Work.wait` intervals inside it, and `busy` the
rest. Ranks wait for each other in their collectives, so synchronised ranks have equal step times;
the slow rank is the one with the most busy time, the ranks waiting for it the ones with most comm.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ...traces import steps as step_model
from ...traces.job import JobData
from ...traces.reader import RunData
from ..findings import CallSite
from .context import RunView
from .context import attrs_of as span_attrs

COLLECTIVE = "collective"
WAIT = "Work.wait"
MIN_STEPS_FOR_WARMUP = 3  # collective-derived steps: the first is warm-up from this many on
TOP_LINES = 5


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _covered(merged: list[tuple[int, int]], lo: int, hi: int) -> int:
    return sum(max(0, min(e, hi) - max(s, lo)) for s, e in merged)


@dataclass
class RankView:
    rank: int
    run: RunData
    view: RunView = field(repr=False)  # the rank as the run diagnosis sees it (own time axis)
    offset_ns: int  # add to the rank's own times to place them on the job's axis
    spans: pd.DataFrame = field(repr=False)  # on the job axis, with dur_ns
    steps: list[tuple[int, int]]  # steady-state step windows, job axis
    step_source: str

    @cached_property
    def comm(self) -> pd.DataFrame:
        """Collective spans and Work.wait syncs, job axis."""
        s = self.spans
        return s[(s["kind"] == COLLECTIVE) | ((s["kind"] == "sync") & (s["name"] == WAIT))]

    @cached_property
    def _comm_merged(self) -> list[tuple[int, int]]:
        return _merge(list(zip(self.comm["start_ns"].tolist(), self.comm["end_ns"].tolist(), strict=False)))

    def comm_in(self, lo: int, hi: int) -> int:
        return _covered(self._comm_merged, lo, hi)

    @cached_property
    def step_ns(self) -> list[int]:
        return [e - s for s, e in self.steps]

    @cached_property
    def comm_ns(self) -> list[int]:
        return [self.comm_in(s, e) for s, e in self.steps]

    @property
    def median_step_s(self) -> float:
        return statistics.median(self.step_ns) / 1e9 if self.steps else 0.0

    @property
    def median_comm_s(self) -> float:
        return statistics.median(self.comm_ns) / 1e9 if self.steps else 0.0

    @cached_property
    def _waits_merged(self) -> list[tuple[int, int]]:
        """Collectives and accelerator syncs (on NCCL a rank waits for the others in its next device
        sync: the collective's host call only enqueues it), job axis."""
        syncs = self.view.syncs
        own = list(zip(syncs["start_ns"].tolist(), syncs["end_ns"].tolist(), strict=True))
        return _merge(self._comm_merged + [(s + self.offset_ns, e + self.offset_ns) for s, e in own])

    @property
    def median_busy_s(self) -> float:
        """The median steady step less its time in collectives and accelerator syncs: the host's work."""
        if not self.steps:
            return 0.0
        waits = [_covered(self._waits_merged, s, e) for s, e in self.steps]
        return statistics.median(st - w for st, w in zip(self.step_ns, waits, strict=True)) / 1e9

    def median_backward_s(self) -> float | None:
        """The median backward pass of the steady steps (the step hooks' split), None without one."""
        if not self.steps or self.step_source.startswith("the recurring"):
            return None
        own = np.array([(s - self.offset_ns, e - self.offset_ns) for s, e in self.steps], dtype=np.int64)
        backward = step_model.split_steps(self.view.spans, own, self.view.syncs)["backward"]
        return float(np.median(backward)) if len(backward) and backward.max() > 0 else None

    def comm_by_site(self) -> list[tuple[str, str, float]]:
        """(collective name, caller, seconds per steady step) inside the steady steps, most first."""
        if not self.steps:
            return []
        per: dict[tuple[str, str], float] = defaultdict(float)
        for row in self.comm.itertuples(index=False):
            inside = sum(max(0, min(row.end_ns, e) - max(row.start_ns, s)) for s, e in self.steps)
            if inside:
                per[(str(row.name), str(row.caller or "?"))] += inside / 1e9
        out = [(n, c, sec / len(self.steps)) for (n, c), sec in per.items()]
        return sorted(out, key=lambda x: -x[2])

    def hot_lines(self) -> list[CallSite]:
        """The innermost user line of each stack sample inside the steady steps but outside the
        collectives and accelerator syncs (waiting is not the work), by time."""
        samples = self.run.samples
        stacks = self.run.stacks
        frames = stacks.get("frames", [])
        stack_list = stacks.get("stacks", [])
        if samples.empty or not stack_list or not self.steps:
            return []
        user = []
        for ids in stack_list:
            frame = next(
                (frames[i] for i in reversed(ids) if 0 <= i < len(frames) and not frames[i].get("library")), None
            )
            user.append(frame)
        mid = samples["t_ns"].to_numpy(dtype=np.int64) + samples["dt_ns"].to_numpy(dtype=np.int64) // 2 + self.offset_ns
        in_steps = np.zeros(len(mid), dtype=bool)
        for s, e in self.steps:
            in_steps |= (mid >= s) & (mid < e)
        for s, e in self._waits_merged:
            in_steps &= ~((mid >= s) & (mid < e))
        agg: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
        for sid, dt in zip(
            samples["stack_id"].to_numpy()[in_steps].tolist(),
            samples["dt_ns"].to_numpy()[in_steps].tolist(),
            strict=True,
        ):
            frame = user[sid] if 0 <= sid < len(user) else None
            if frame is None:
                continue
            key = (str(frame.get("file", "")), int(frame.get("line") or 0))
            agg[key][0] += 1
            agg[key][1] += dt / 1e9
        sites = [CallSite(f, ln, int(n), float(sec)) for (f, ln), (n, sec) in agg.items()]
        return sorted(sites, key=lambda c: -c.seconds)[:TOP_LINES]


def _collective_steps(spans: pd.DataFrame) -> tuple[list[tuple[int, int]], str]:
    """Steps from the most frequent collective call site, for a rank whose steps were not found."""
    coll = spans[spans["kind"] == COLLECTIVE]
    if coll.empty:
        return [], "no steps and no collectives"
    sites = coll.groupby(["name", coll["caller"].fillna("?")]).size().sort_values(ascending=False)
    (name, caller), count = sites.index[0], int(sites.iloc[0])
    if count < 2:
        return [], "no steps and no recurring collective"
    ends = sorted(coll[(coll["name"] == name) & (coll["caller"].fillna("?") == caller)]["end_ns"].tolist())
    windows = list(zip(ends[:-1], ends[1:], strict=True))
    if len(windows) >= MIN_STEPS_FOR_WARMUP:
        windows = windows[1:]
    return windows, f"the recurring {name} at {caller} (no steps found)"


def rank_view(rank: int, run: RunData, offset_ns: int) -> RankView:
    view = RunView(run)
    spans = view.spans.copy()
    spans["start_ns"] = spans["start_ns"] + offset_ns
    spans["end_ns"] = spans["end_ns"] + offset_ns
    spans["dur_ns"] = spans["end_ns"] - spans["start_ns"]
    steady = view.steady if len(view.steady) else view.steps
    if len(steady) >= 2:
        steps = [(int(s) + offset_ns, int(e) + offset_ns) for s, e in steady]
        warm = f", {view.n_warmup} warm-up left out" if view.n_warmup else ""
        source = f"{view.steps_source}{warm}"
    else:
        steps, source = _collective_steps(spans)
    return RankView(rank, run, view, offset_ns, spans, steps, source)


class JobContext:
    """What the job rules read: the job and a RankView per rank found."""

    def __init__(self, job: JobData) -> None:
        self.job = job
        self.ranks = {rank: rank_view(rank, run, job.offsets_ns.get(rank, 0)) for rank, run in job.ranks.items()}

    @property
    def with_steps(self) -> list[RankView]:
        return [v for v in self.ranks.values() if len(v.steps) >= 2]

    def bytes_per_step(self, view: RankView) -> float:
        if not view.steps:
            return 0.0
        lo, hi = view.steps[0][0], view.steps[-1][1]
        coll = view.comm[
            (view.comm["kind"] == COLLECTIVE) & (view.comm["start_ns"] >= lo) & (view.comm["end_ns"] <= hi)
        ]
        total = sum(int(span_attrs(a).get("bytes") or 0) for a in coll["attrs"].tolist())
        return total / len(view.steps)
