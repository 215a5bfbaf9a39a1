"""The fixed cost of observation: what `cnnprof profile` adds to a script's wall time before the
script starts and after it ends, against plain `python SCRIPT` (issue 11: under 0.5 s).

    python benchmarks/fixed_cost.py [--repeats 3] [--seconds 10] [--root DIR ...]

Two scripts: an empty one and one that runs Python for `--seconds` of wall time. Each is run as
`python SCRIPT`, `cnnprof profile --no-report -- SCRIPT` and `cnnprof profile -- SCRIPT`, in turn,
`--repeats` times. The script prints the wall clock (`time_ns`) when it starts and ends, and the
run's end marks the end of the observation (run.json's `ended_unix_ns`, written by the run's end;
a cnnprof that does not write it: run.json's last write, its mtime), so each run splits into

* start: from launching the command to the script's first line (interpreter, imports, the
  telemetry process, the observers),
* stop: from the script's last line to the run's end (observers stop, run.json; before the
  tables were left to the first reader, also the tables),
* explain: from there to the exit (the first read, which builds the tables, the diagnosis,
  report.html unless --no-report, the exit).

Plain python has a start and an exit (its stop). cnnprof's own cost is its start + stop minus
python's start + stop; the explanation is printed next to it. Medians are printed. Each `--root`
is a checkout whose cnnprof runs (default: this one); several are run in turn, repeat by repeat,
so that a before and an after see the same load (`--root /older/checkout --root .`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """import sys, time
print("@start", time.time_ns(), file=sys.stderr, flush=True)
end = time.perf_counter() + {seconds}
while time.perf_counter() < end:
    sum(i * i for i in range(1000))
print("@end", time.time_ns(), file=sys.stderr, flush=True)
"""


def timed(cmd: list[str], env: dict[str, str], out: Path) -> tuple[float, float, float]:
    """(start s, stop s, explain s) of one command. It runs in `out`'s folder: `python -m` puts the
    current directory first on sys.path, so from a checkout it would import that checkout's
    cnnprof whatever `--root` says."""
    launch = time.time_ns()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out.parent)
    exit_ns = time.time_ns()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    marks = {line.split()[0]: int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("@")}
    runs = sorted(out.glob("*/run.json"), key=lambda p: p.stat().st_mtime_ns)
    written = exit_ns
    if runs and runs[-1].stat().st_mtime_ns > marks["@end"]:
        written = json.loads(runs[-1].read_text()).get("ended_unix_ns") or runs[-1].stat().st_mtime_ns
    return (marks["@start"] - launch) / 1e9, (written - marks["@end"]) / 1e9, (exit_ns - written) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--root", type=Path, action="append")
    args = parser.parse_args()
    roots = [r.resolve() for r in args.root or [Path(__file__).resolve().parents[1]]]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs"
        configs = {
            "python": lambda s: [sys.executable, str(s)],
            "cnnprof --no-report": lambda s: [sys.executable, "-m", "cnnprof.cli", "profile", "--no-report",
                                              "--out", str(out), "--", str(s)],
            "cnnprof (report)": lambda s: [sys.executable, "-m", "cnnprof.cli", "profile", "--out", str(out),
                                           "--", str(s)],
        }
        print(f"{platform.node()} {platform.platform()} python {platform.python_version()}, "
              f"{args.repeats} repeats, {time.strftime('%Y-%m-%d %H:%M')}")
        for name, seconds in (("empty script", 0.0), (f"{args.seconds:g} s script", args.seconds)):
            script = Path(tmp) / f"script_{seconds:g}.py"
            script.write_text(SCRIPT.format(seconds=seconds))
            got: dict[tuple[Path, str], list[tuple[float, float, float]]] = {}
            for _ in range(args.repeats):
                for root in roots:
                    env = {**os.environ, "PYTHONPATH": str(root)}
                    for config, cmd in configs.items():
                        got.setdefault((root, config), []).append(timed(cmd(script), env, out))
            for root in roots:
                med = {c: tuple(statistics.median(x[i] for x in got[(root, c)]) for i in range(3)) for c in configs}
                base = sum(med["python"])
                print(f"\n{name}, cnnprof from {root}")
                print(f"  {'':22} {'start s':>8} {'stop s':>8} {'explain s':>10} {'own s':>7}")
                for config, (start, stop, explain) in med.items():
                    own = start + stop - base if config != "python" else 0.0
                    print(f"  {config:22} {start:8.3f} {stop:8.3f} {explain:10.3f} {own:7.3f}")


if __name__ == "__main__":
    main()
