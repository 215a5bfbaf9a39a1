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
