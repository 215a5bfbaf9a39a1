"""`input-bound`: fetching batches takes a large share of the steady-state step time.

The share is the steady-state steps' `data` part (DataLoader `__next__` from the step hooks, or a
loop's own `data` phases); without steps, the stack samples in the input pipeline. The finding
names where the time goes (the dataset's `__getitem__`, collate, the user's loop line that
iterates the loader) and its cause, each with its own fix:

* *per-sample work*: the main process runs the dataset's per-sample code (num_workers=0);
* *transfer*: with worker processes, the main process spends its fetch time receiving batches
  (unpickling, rebuilding shared-memory tensors), which more workers cannot fix;
* *waiting for workers*: the main process waits on the workers' queue: they can't keep up.

The DataLoader's own `num_workers` (recorded by the hook on `DataLoader.__iter__`) decides the
advice, so it never advises what the script already does. With workers, their own stack samples
(workers.py) name the lines that make the batches (the transform, the dataset's `__getitem__`),
and the finding says what share of the step time the main process spent waiting for them.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..findings import SAMPLES, CallSite, Finding
from .context import TOP_SITES, Frame, RunView, inside, merge, norm
from .sites import first_user_frame, short
from .workers import WorkerTime, worker_time

# A quarter of the step in the input pipeline means the device waits that long every step
# unless loading overlaps with compute (which in-process loading does not).
INPUT_BOUND_SHARE = 0.25
INPUT_HIGH_SHARE = 0.50
# A site is named in the claim when it holds at least a tenth of the sampled input time.
INPUT_NAME_SHARE = 0.10
# With worker processes the main process does no per-sample work: its fetch time is either
# waiting on the workers' queue or moving the batch (dispatching indices, receiving, unpickling,
# rebuilding shared-memory tensors). The cause is "wait" (the workers can't keep up) when waiting
# is at least half of that time, else "transfer" (moving batches costs more than making them).
WAIT_SHARE = 0.50
# Workers whose own samples are in a dataset's __getitem__ or collate for this share of their time
# or more can't keep up (the corpus: 95 % in a per-sample blur, 6 % in worker_transfer.py's).
WORKERS_BUSY_SHARE = 0.75
# Host-to-device copies, as stack-sample leaves (only input work on a GPU run).
_H2D_METHODS = ("to", "cuda", "copy_", "pin_memory")
# Where the main process receives a batch from a worker: unpickling it (`loads` in the queue's
# `get`), rebuilding its tensors from shared memory (torch's reductions), receiving the file
# descriptors (multiprocessing's reduction).
_TRANSFER_FILES = ("/torch/multiprocessing/reductions.py", "/multiprocessing/reduction.py")
_WAIT_FILES = ("/multiprocessing/connection.py", "/multiprocessing/queues.py", "/threading.py", "/selectors.py")


def _input_site(frames: list[Frame], h2d: bool) -> tuple[int, Frame] | None:
    """(priority, frame) naming the input work in one stack, or None (not input work).

    Priority: the dataset's `__getitem__` (the outermost one outside torch.utils.data, so a Subset
    wrapper names the dataset it wraps) > a torch.utils.data `__getitem__` > a collate function >
    other torch.utils.data frames (DataLoader iteration, waiting for workers) > a host-to-device
    copy on a GPU run (named by its caller).
    """
    best: tuple[int, Frame] | None = None
    for frame in frames:
        file = norm(frame.file)
        name = frame.short_name
        in_data = "/torch/utils/data/" in file
        if frame.file == "<built-in>":
            continue
        if name in ("__getitem__", "__getitems__") and (
            not frame.library or in_data or "/datasets/" in file or "/data/" in file
        ):
            # a dataset's: the user's own, torch.utils.data's, or a library's datasets package
            # (torchvision.datasets, HF datasets); not typing's, numpy's or nn.Sequential's
            prio = 3 if not in_data else 2
        elif "collate" in name.lower():
            prio = 1
        elif in_data:
            prio = 0
        else:
            continue
        if best is None or prio > best[0]:  # outermost wins among equals
            best = (prio, frame)
    if best is not None:
        return best
    if h2d and frames:
        leaf = frames[-1]
        owner, _, method = leaf.function.rpartition(".")
        if leaf.file == "<built-in>" and method in _H2D_METHODS and "Tensor" in owner:
            user = first_user_frame(frames[:-1])
            if user is not None:
                label = f"{leaf.function} (host-to-device copy)"
                return (-1, Frame(label, user.file, user.line, user.line, False))
    return None


def _fetch_kind(frames: list[Frame]) -> str:
    """What the main process does in one fetch sample: "transfer", "wait" or "work"."""
    files = [norm(f.file) for f in frames]
    if any(f.endswith(_TRANSFER_FILES) for f in files):
        return "transfer"
    if files and files[-1].endswith("/multiprocessing/queues.py") and frames[-1].short_name == "get":
        return "transfer"  # Queue.get as the leaf: its C call `_ForkingPickler.loads(res)`, past the wait
    if files and files[-1].endswith(_WAIT_FILES):
        return "wait"
    return "work"


def _loop_line(frames: list[Frame]) -> Frame | None:
    """The user's line that asked for the batch: the last user frame before torch.utils.data."""
    last_user = None
    for frame in frames:
        if "/torch/utils/data/" in norm(frame.file):
            return last_user
        if not frame.library:
            last_user = frame
    return None


def _workers(ctx: RunView) -> int | None:
    counts = [a.get("num_workers") for a in ctx.loaders() if isinstance(a.get("num_workers"), int)]
    return max(counts) if counts else None


def rule_input(ctx: RunView) -> list[Finding]:
    samples = ctx.samples
    data = ctx.spans[
        ctx.spans["kind"].isin(("data",)) | ((ctx.spans["kind"] == "hook") & (ctx.spans["name"] == "data"))
    ]
    data = data[inside(data["start_ns"].to_numpy(np.int64), data["end_ns"].to_numpy(np.int64), ctx.window)]
    h2d = ctx.uses_gpu
    sites: dict[tuple[str, str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    loop_lines: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    kinds: dict[str, float] = defaultdict(float)
    sampled_input_s = sampled_total_s = 0.0
    if not samples.empty:
        per_stack = samples.per_stack(f"input_site:{h2d}", lambda fr: _input_site(fr, h2d))
        in_win = samples.in_window_not_importing(ctx.window)
        sampled_total_s = float(samples.dt[in_win].sum()) / 1e9
        # With data spans, name what ran inside them; without, every input sample in the window.
        if not data.empty:
            in_win &= samples.in_window(merge(data[["start_ns", "end_ns"]].to_numpy(np.int64)))
        fetch_kind = samples.per_stack("fetch_kind", _fetch_kind)
        loop_of = samples.per_stack("loop_line", _loop_line)
        no_data = data.empty
        for sid, n, seconds in samples.totals_by_stack(in_win):
            site = per_stack[sid]
            if site is None and no_data:
                continue
            sampled_input_s += seconds
            kinds[fetch_kind[sid]] += seconds
            if site is not None:
                key = (site[1].function, site[1].file, site[1].first_line)
                sites[key][0] += n
                sites[key][1] += seconds
            loop = loop_of[sid]
            if loop is not None:
                loop_lines[(loop.file, loop.line)][0] += n
                loop_lines[(loop.file, loop.line)][1] += seconds

    if ctx.split and not data.empty:
        input_s = ctx.split["data"]
        share = input_s / ctx.window_s
        basis = f"{len(data):,} batch fetches: {input_s:.2f} s of {ctx.window_text} ({share:.0%})"
    elif not data.empty:
        input_s = float(data["dur_s"].sum())
        share = input_s / ctx.window_s
        basis = f"{len(data):,} batch fetches ('data' phases): {input_s:.2f} s of {ctx.window_text} ({share:.0%})"
    elif sampled_total_s > 0:
        input_s = sampled_input_s
        share = input_s / sampled_total_s
        basis = (
            f"stack samples in the input pipeline: {input_s:.2f} s of {sampled_total_s:.2f} s sampled "
            f"in {ctx.window_label} ({share:.0%})"
        )
    else:
        return []
    if share < INPUT_BOUND_SHARE:
        return []
    return [_finding(ctx, share, basis, sites, loop_lines, kinds, sampled_input_s)]


def _finding(
    ctx: RunView,
    share: float,
    basis: str,
    sites: dict[tuple[str, str, int], list[float]],
    loop_lines: dict[tuple[str, int], list[float]],
    kinds: dict[str, float],
    sampled_input_s: float,
) -> Finding:
    ranked = sorted(sites.items(), key=lambda kv: -kv[1][1])
    evidence = [basis]
    for (function, file, line), (n, s) in ranked[:5]:
        evidence.append(f"{function} ({short(file)}:{line}): {s:.2f} s in {n:,} samples")
    loops = sorted(loop_lines.items(), key=lambda kv: -kv[1][1])
    if loops:
        (file, line), (n, s) = loops[0]
        evidence.append(f"the loop that fetches the batches: {short(file)}:{line} ({s:.2f} s in {n:,} samples)")
    workers = _workers(ctx)
    busy = worker_time(ctx) if workers != 0 else None  # the workers' own samples, read only here
    cause = _cause(kinds, sampled_input_s, workers, busy)
    evidence.append(_cause_line(cause, kinds, sampled_input_s, workers))
    names = [kv[0][0] for kv in ranked[:2] if kv[1][1] >= INPUT_NAME_SHARE * max(sampled_input_s, 1e-9)]
    where = f", mostly in {' and '.join(names)}" if names and cause != "transfer" else ""
    what = {"transfer": ": moving batches out of the worker processes", "wait": ": waiting for the workers"}.get(
        cause, ""
    )
    call_sites = []
    if busy is not None and busy.work_s > 0:
        evidence += _worker_lines(busy)
        call_sites = [CallSite(file, line, int(n), float(s), SAMPLES) for (_, file, line), (n, s) in busy.ranked()[:5]]
    if cause == "wait" and sampled_input_s > 0:
        waited = share * kinds.get("wait", 0.0) / sampled_input_s
        evidence.append(f"the main process waited on the workers' queue {waited:.0%} of the step time")
        if busy is not None and busy.work_s > 0:
            top = [kv[0][0] for kv in busy.ranked()[:2] if kv[1][1] >= INPUT_NAME_SHARE * busy.work_s]
            what = (
                f": the workers can't keep up (busy making batches {busy.busy_share:.0%} of their time; the main "
                f"process waited on their queue {waited:.0%} of the step time)"
            )
            where = f"; the workers' time goes to {' and '.join(top)}" if top else ""
    claim = f"Loading batches takes {share:.0%} of the steady-state step time (input-bound){what}{where}"
    call_sites += [CallSite(file, line, int(n), float(s), SAMPLES) for (_, file, line), (n, s) in ranked[:TOP_SITES]]
    call_sites += [CallSite(file, line, int(n), float(s), SAMPLES) for (file, line), (n, s) in loops[:1]]
    severity = "high" if share >= INPUT_HIGH_SHARE else "medium"
    return Finding("input-bound", severity, claim, evidence, _fix(cause, workers), call_sites)


def _worker_lines(busy: WorkerTime) -> list[str]:
    plural = "s" if busy.workers != 1 else ""
    lines = [
        f"in the {busy.workers} DataLoader worker{plural} (their own stack samples): {busy.work_s:.2f} s of "
        f"{busy.sampled_s:.2f} s sampled in the window making batches"
    ]
    for (function, file, line), (n, s) in busy.ranked()[:5]:
        lines.append(f"{function} ({short(file)}:{line}) in the workers: {s:.2f} s in {int(n):,} samples")
    return lines


def _cause(kinds: dict[str, float], total: float, workers: int | None, busy: WorkerTime | None) -> str:
    """With workers: "wait" when the main process waits on their queue for half its fetch time or
    more, or when their own samples show them making batches most of the time (WORKERS_BUSY_SHARE:
    the main process then also waits on their busy resource-sharer threads to hand over each batch's
    shared memory, which its samples show as receiving); else "transfer"."""
    if total <= 0:
        return "unknown"
    if workers:
        if kinds.get("wait", 0.0) >= WAIT_SHARE * total:
            return "wait"
        return "wait" if busy is not None and busy.busy_share >= WORKERS_BUSY_SHARE else "transfer"
    return "work"


def _cause_line(cause: str, kinds: dict[str, float], total: float, workers: int | None) -> str:
    shares = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) if total else ""
    setting = "num_workers unknown" if workers is None else f"num_workers={workers}"
    return f"main-process fetch time by what it did: {shares or 'no samples'} ({setting}; cause: {cause})"


def _fix(cause: str, workers: int | None) -> str:
    if cause == "transfer":
        return (
            f"The batches cost more to move out of the {workers} worker processes than to make: use larger "
            "batches (fewer, larger transfers), num_workers=0 when the per-sample work is cheap, or keep the "
            "data as one tensor and slice batches from it (on the device where there is one)."
        )
    if cause == "wait":
        return (
            f"The {workers} workers can't keep up: make the per-sample transform cheaper (vectorise it, or "
            "do it once up front), raise num_workers towards the number of cores, and set "
            "persistent_workers=True so they are not restarted every epoch."
        )
    more = " and overlap loading with compute (DataLoader num_workers>0, pin_memory=True)" if not workers else ""
    return (
        "Take per-sample Python work out of the loop: transform the dataset once up front or vectorise the "
        f"transform over whole batches{more}, or slice batches from a device-resident tensor."
    )
