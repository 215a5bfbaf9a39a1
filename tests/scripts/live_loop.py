"""A training-like loop for the live view's terminal test: steps marked by hand until a stop file
appears (or a minute passes), so the test decides when the run ends."""

import sys
import time
from pathlib import Path

import cnnprof

stop = Path(sys.argv[1])
deadline = time.monotonic() + 60
n = 0
while not stop.exists() and time.monotonic() < deadline:
    total = sum(i * i for i in range(20_000))  # a little host work per step
    time.sleep(0.02)
    cnnprof.step()
    n += 1
    if n % 50 == 0:
        print(f"step {n}", flush=True)  # shown above the panel, not through it
print("loop done", total > 0)
