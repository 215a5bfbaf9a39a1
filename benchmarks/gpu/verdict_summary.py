"""Prints the verdict and findings of a `cnnprof diagnose --json` file in a few lines (the GPU
session scripts keep the JSON and print this).

    python3 benchmarks/gpu/verdict_summary.py DIAGNOSE.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

d = json.loads(Path(sys.argv[1]).read_text())
v = d["verdict"]
print("verdict:", v["id"], "|", v["claim"])
split = {k: round(x, 3) for k, x in v["split"].items()}
print("  busy:", v["device_busy_pct"], "step_s:", v["step_s"], "split:", split)
print("  window:", v["window"])
for f in d["findings"]:
    print("  finding:", f["id"], f["severity"], "|", f["claim"])
    for e in f["evidence"][:6]:
        print("     -", e)
