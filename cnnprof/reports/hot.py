"""The hot-function table from `profile.pstats` (cProfile's own columns)."""

from __future__ import annotations

import pstats
from dataclasses import dataclass
from pathlib import Path

from ..traces.flame import is_own_frame


@dataclass(frozen=True)
class HotFunction:
    ncalls: int  # all calls, recursive ones included
    primcalls: int  # calls not made from inside the function itself
    tottime: float  # seconds in the function itself
    cumtime: float  # seconds in it and everything it called
    function: str
    file: str
    line: int

    @property
    def ncalls_text(self) -> str:
        return f"{self.ncalls}/{self.primcalls}" if self.ncalls != self.primcalls else str(self.ncalls)

    @property
    def percall_tot(self) -> float:
        return self.tottime / self.ncalls if self.ncalls else 0.0

    @property
    def percall_cum(self) -> float:
        return self.cumtime / self.primcalls if self.primcalls else 0.0

    @property
    def where(self) -> str:
        return self.file if self.file == "~" else f"{self.file}:{self.line}"


@dataclass(frozen=True)
class HotTable:
    rows: list[HotFunction]  # the `limit` functions with the most cumulative time
    total_s: float  # the profile's total time
    own_left_out: int  # cnnprof's own functions (traces/flame.py's is_own_frame) not listed


def hot_functions(path: Path, limit: int = 60) -> HotTable:
    """Raises OSError / ValueError / EOFError / TypeError for an unreadable file."""
    stats = pstats.Stats(str(path))
    rows, own = [], 0
    for (file, line, function), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        file = str(file)
        if is_own_frame(file, library="/lib/python" in file):
            own += 1
            continue
        rows.append(HotFunction(int(nc), int(cc), float(tt), float(ct), str(function), file, int(line)))
    rows.sort(key=lambda r: (-r.cumtime, -r.tottime))
    return HotTable(rows[:limit], float(stats.total_tt), own)  # type: ignore[attr-defined]
