"""Small helpers shared by tests (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def only_run_dir(root: Path) -> Path:
    """The one run directory a command made under `root`."""
    dirs = [p for p in root.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_meta(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def rows_until_the_source_fails(source: Any, message: str, polls: int = 100) -> list[tuple[int, str, float]]:
    """Reads a piped telemetry source every 50 ms until it raises RuntimeError matching
    `message` (its child exited); the rows it gave before that. Closes the source."""
    import time

    import pytest

    rows: list[tuple[int, str, float]] = []
    try:
        with pytest.raises(RuntimeError, match=message):
            for _ in range(polls):
                rows += source.read(time.perf_counter_ns())
                time.sleep(0.05)
    finally:
        source.close()
    return rows
