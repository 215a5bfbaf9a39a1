"""What the live panel costs a run: median epoch time of `cnnprof run --live` over `cnnprof run`.

    python benchmarks/live_cost.py --backend torch_cpu --pairs 5 -- \
        --train-images 4096 --epochs 3 --single-inference 0 --test-images 512

First, machine-independent of the rounds' noise: the time one redraw takes (read the new
telemetry and spans, judge, render the panel to a terminal) on a busy GPU-like run, which is what
the view's thread takes from the training thread's GIL twice a second, at most.

Both sides run in a pseudo-terminal (the panel draws only on a terminal; without one `--live`
falls back to the line output and would cost nothing by construction), so A draws the usual
progress bars and B the panel instead. They alternate, `--pairs` rounds, as separate processes, so
drift on a shared machine hits both alike. Per run: the median epoch time of epochs 2.. (epoch 1
pays start-up); then the median of each side over the rounds, their ratio, and each round's ratio
(their spread is the noise). A run of side B whose terminal never showed the panel is an error.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import pty
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
from pathlib import Path

COLUMNS, ROWS = 110, 40


def run_in_terminal(run_args: list[str], out: Path) -> tuple[float, str]:
    """`cnnprof run RUN_ARGS --out OUT` with a pseudo-terminal as stdout and stderr: (the median
    steady epoch time, everything the terminal received)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    command = [sys.executable, "-m", "cnnprof.cli", "run", "--no-report", *run_args, "--out", str(out)]
    env = {**os.environ, "TERM": os.environ.get("TERM", "xterm-256color"), "COLUMNS": str(COLUMNS)}
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    received: list[bytes] = []

    def drain() -> None:  # a terminal nobody reads would block the run once its buffer is full
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the run closed its side
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    code = proc.wait()
    reader.join(timeout=5)
    os.close(master)
    text = b"".join(received).decode("utf-8", "replace")
    run_dirs = sorted(p for p in out.glob("*") if p.is_dir()) if out.exists() else []
    if code != 0 or not run_dirs:
        raise SystemExit(f"cnnprof run failed ({code}): {text[-800:]}")
    import pyarrow.parquet as pq

    epoch_s = pq.read_table(run_dirs[-1] / "metrics.parquet").column("epoch_s").to_pylist()
    return statistics.median(epoch_s[1:] or epoch_s), text


def redraw_cost(ticks: int = 40, spans_per_tick: int = 2000) -> float:
    """CPU seconds per redraw: NVML-like telemetry at 10 Hz (12 metrics) and `spans_per_tick` new span
    rows (a 500-step/s loop's batch, parts and syncs over half a second) per redraw."""
    import io
    import time

    from rich.console import Console

    from cnnprof.live.panel import render
    from cnnprof.live.state import TELEMETRY_STREAM, LiveReader

    rows: list[tuple] = []
    clock = [time.perf_counter_ns()]
    metrics = ("sm_clock_mhz", "gpu_util_pct", "power_w", "mem_used_mb", "temp_c", "mem_clock_mhz")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        (run_dir / "run.json").write_text(f'{{"status": "running", "t0_perf_ns": {clock[0]}, "kind": "train"}}')
        stream = (run_dir / TELEMETRY_STREAM).open("w")
        stream.write("t_ns,source,metric,value\n")
        reader = LiveReader(run_dir, span_rows=lambda: rows, clock=lambda: clock[0])
        console = Console(file=io.StringIO(), force_terminal=True, width=COLUMNS, color_system="truecolor")
        spent = 0.0
        for tick in range(ticks):
            t = clock[0]
            for i in range(5):  # 10 Hz over half a second, two sources' worth
                stream.writelines(f"{t + i},nvml,{m},{tick + i}.5\n" for m in metrics)
                stream.writelines(f"{t + i},procfs,cpu.{c}.busy_pct,{(tick * c) % 100}\n" for c in range(16))
            stream.flush()
            step_ns = 500_000_000 // (spans_per_tick // 4)
            for k in range(spans_per_tick // 4):
                s0 = t + k * step_ns
                rows += [
                    ("data", "slice", s0, s0 + step_ns // 10, 1, k, None, None),
                    ("forward", "forward", s0 + step_ns // 10, s0 + step_ns // 2, 1, k, None, None),
                    ("sync", "item", s0 + step_ns // 2, s0 + step_ns * 3 // 4, 1, k, "train.py:9", {"device": "cuda"}),
                    ("batch", "train", s0, s0 + step_ns, 1, k, None, None),
                ]
            clock[0] = t + 500_000_000
            start = time.process_time()  # CPU time: what the redraw takes, not what a busy machine adds
            console.print(render(reader.tick()))
            spent += time.process_time() - start
        stream.close()
    return spent / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="torch_cpu")
    parser.add_argument("--pairs", type=int, default=5, help="rounds: each side runs once per round")
    parser.add_argument("common", nargs=argparse.REMAINDER, help="after --: options for both sides")
    args = parser.parse_args()
    per_redraw = redraw_cost()
    print(f"one redraw (2,000 new spans, 110 telemetry rows): {per_redraw * 1e3:.2f} ms CPU; at 2 Hz "
          f"{per_redraw * 2 * 100:.2f} % of one thread's time", flush=True)
    common = ["--backend", args.backend, *(a for a in args.common if a != "--")]
    base_times: list[float] = []
    live_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            base, _ = run_in_terminal(common, Path(tmp) / f"A{i}")
            live, screen = run_in_terminal([*common, "--live"], Path(tmp) / f"B{i}")
            if "cnnprof live" not in screen:
                raise SystemExit("side B never drew the live panel: nothing would be measured")
            base_times.append(base)
            live_times.append(live)
            print(f"round {i + 1}: A {base:.4f} s  B {live:.4f} s  B/A {live / base:.3f}", flush=True)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}; backend {args.backend}")
    print(f"common = {shlex.join(common)!r}; {args.pairs} rounds; A = progress bars, B = --live")
    a, b = statistics.median(base_times), statistics.median(live_times)
    print(f"median epoch: A {a:.4f} s, B {b:.4f} s; B/A = {b / a:.3f}")


if __name__ == "__main__":
    main()
