"""Call sites: where a finding's time is, as `file:line` a person can open."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..findings import CALLS, SAMPLES, CallSite
from .context import TOP_SITES, Frame, RunView, norm


def split_caller(caller: str | None) -> tuple[str, int] | None:
    if not caller or not isinstance(caller, str):
        return None
    file, _, line = caller.rpartition(":")
    if not file:
        return None
    try:
        return file, int(line)
    except ValueError:
        return caller, 0


def short(path: str) -> str:
    """A path as a person reads it: from the package for installed code, relative to here else."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in norm(path):
            return norm(path).split(marker, 1)[1]
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def sites_from_spans(spans: pd.DataFrame, by_count: bool = False) -> list[CallSite]:
    """Hooked calls grouped by caller (count = calls)."""
    agg: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    for caller, dur in zip(spans["caller"].tolist(), spans["dur_s"].tolist(), strict=False):
        key = split_caller(caller) or ("<unknown>", 0)
        agg[key][0] += 1
        agg[key][1] += dur
    sites = [CallSite(f, ln, int(c), float(s), CALLS) for (f, ln), (c, s) in agg.items()]
    sites.sort(key=(lambda c: (-c.count, -c.seconds)) if by_count else (lambda c: (-c.seconds, -c.count)))
    return sites[:TOP_SITES]


def site_text(site: CallSite) -> str:
    return f"{short(site.file)}:{site.line} ({site.count:,} {site.unit}, {site.seconds:.2f} s)"


def first_user_frame(frames: Sequence[Frame]) -> Frame | None:
    """The innermost frame of the user's code (libraries, the standard library and cnnprof's own
    machinery are `library`, by path)."""
    for frame in reversed(frames):
        if not frame.library:
            return frame
    return None


def hot_user_sites(ctx: RunView, window: np.ndarray, *, skip_imports: bool = True) -> list[CallSite]:
    """Where the host spends its time: the innermost user-code line of each sample (count = samples)."""
    samples = ctx.samples
    if samples.empty:
        return []
    per_stack = samples.per_stack("first_user", first_user_frame)
    mask = samples.in_window_not_importing(window) if skip_imports else samples.in_window(window)
    agg: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    for sid, n, seconds in samples.totals_by_stack(mask):
        frame = per_stack[sid]
        if frame is not None:
            agg[(frame.file, frame.line)][0] += n
            agg[(frame.file, frame.line)][1] += seconds
    sites = [CallSite(f, ln, int(n), float(s), SAMPLES) for (f, ln), (n, s) in agg.items()]
    sites.sort(key=lambda c: -c.seconds)
    return sites[:TOP_SITES]
