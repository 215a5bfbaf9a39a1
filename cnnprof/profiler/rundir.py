"""A new run directory under `--out`. Light on imports (no pyarrow): `cnnprof profile` makes the
directory first, to start the telemetry sampler while its own imports still load."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ..errors import UserError


def make_run_dir(out_root: Path, label: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe_label = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            # Runs started in the same second (cnnprof bench) get -2, -3, ...
            path = out_root / (f"{stamp}-{safe_label}" + (f"-{n}" if n > 1 else ""))
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise UserError(
            f"cannot write run directory under {out_root}: {exc.strerror or exc}; "
            "pass a writable folder with --out"
        ) from None
    raise UserError(f"too many runs named {label} in {out_root} this second; pass another --out")
