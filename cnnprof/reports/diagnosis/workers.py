"""What the DataLoader workers did, from their own stack samples (profiler/children.py): the main
process of a run with workers only shows itself waiting on their queue, so the lines that make
the batches (the dataset's `__getitem__` and the transform it calls) are named from the workers.

A worker sample is per-sample work when its stack has the dataset's `__getitem__` (or a collate
function); it is charged to the innermost frame of the user's code in it (the transform line's
function, else the `__getitem__` itself). Only the samples inside the rules' window count, with the
same midpoint rule as the main process's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .context import Frame, RunView, norm

WORKER_ROLE = "dataloader worker"


@dataclass
class WorkerTime:
    workers: int  # DataLoader workers sampled
    sampled_s: float = 0.0  # their samples in the window, summed over the workers
    work_s: float = 0.0  # of which per-sample work (a dataset __getitem__ or collate on the stack)
    # (function, file, first line) -> [samples, seconds]: the innermost user frame of the work
    sites: dict[tuple[str, str, int], list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0.0]))

    @property
    def busy_share(self) -> float:
        """The share of their sampled time the workers spent making batches."""
        return self.work_s / self.sampled_s if self.sampled_s > 0 else 0.0

    def ranked(self) -> list[tuple[tuple[str, str, int], list[float]]]:
        return sorted(self.sites.items(), key=lambda kv: -kv[1][1])


def _is_dataset_work(frame: Frame) -> bool:
    name = frame.short_name
    if name in ("__getitem__", "__getitems__"):
        file = norm(frame.file)
        return not frame.library or "/torch/utils/data/" in file or "/datasets/" in file or "/data/" in file
    return "collate" in name.lower()


def work_site(frames: list[Frame]) -> Frame | None:
    """The frame to charge a worker sample to, or None when the worker was not making a batch
    (waiting for indices, starting up)."""
    start = next((i for i, f in enumerate(frames) if _is_dataset_work(f)), None)
    if start is None:
        return None
    user = [f for f in frames[start:] if not f.library and f.file != "<built-in>"]
    return user[-1] if user else frames[start]


def worker_time(ctx: RunView) -> WorkerTime | None:
    """The DataLoader workers' time in the window, or None for a run without sampled workers."""
    workers = [(p, s) for p, s in ctx.children if p.role.startswith(WORKER_ROLE) and not s.empty]
    if not workers:
        return None
    out = WorkerTime(len(workers))
    for _, samples in workers:
        site_of = samples.per_stack("worker_site", work_site)
        for sid, n, seconds in samples.totals_by_stack(samples.in_window_not_importing(ctx.window)):
            out.sampled_s += seconds
            site = site_of[sid]
            if site is None:
                continue
            out.work_s += seconds
            entry = out.sites[(site.function, site.file, site.first_line)]
            entry[0] += n
            entry[1] += seconds
    return out
