"""Observation overhead: median epoch time of `cnnprof run` with an observer over without.

    python benchmarks/overhead.py --backend torch_cpu --pairs 5 \
        --base "--telemetry none --profiler none" --with "--telemetry auto --profiler none" \
        -- --train-images 4096 --epochs 3 --single-inference 0

Runs A (base) and B (with), or A, B, C, ... with several `--with`, in rotation, `--pairs`
rounds, as separate `cnnprof run` processes, so drift on a shared machine hits every side alike.
Per run it takes the median epoch time of epochs 2.. (epoch 1 pays start-up), then prints the
median over runs of each side and its ratio to A, and each round's ratios (their spread shows
the noise).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import tempfile
from pathlib import Path

from cnnprof.bench import run_in_process


def one_run(backend: str, extra: list[str], out: Path) -> float:
    returncode, run_dir, stderr = run_in_process(["--backend", backend, "--no-report", *extra], out)
    if returncode != 0 or run_dir is None:
        raise SystemExit(f"cnnprof run failed ({returncode}): {stderr.strip()[-500:]}")
    import pyarrow.parquet as pq

    epoch_s = pq.read_table(run_dir / "metrics.parquet").column("epoch_s").to_pylist()
    steady = epoch_s[1:] or epoch_s
    return statistics.median(steady)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="torch_cpu")
    parser.add_argument("--pairs", type=int, default=5, help="rounds: each side runs once per round")
    parser.add_argument("--base", default="--telemetry none --profiler none", help="options of side A")
    parser.add_argument(
        "--with", dest="with_", action="append", required=True,
        help="options of a side compared with A (repeat for B, C, ...: all run in rotation)",
    )
    parser.add_argument("common", nargs=argparse.REMAINDER, help="after --: options for both sides")
    args = parser.parse_args()
    common = [a for a in args.common if a != "--"]
    sides = [args.base, *args.with_]
    names = [chr(ord("A") + i) for i in range(len(sides))]
    times: list[list[float]] = [[] for _ in sides]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            for name, options, side_times in zip(names, sides, times):
                side_times.append(one_run(args.backend, shlex.split(options) + common, Path(tmp) / f"{name}{i}"))
            print(
                f"round {i + 1}: "
                + "  ".join(f"{n} {t[-1]:.4f} s" for n, t in zip(names, times))
                + "  "
                + "  ".join(f"{n}/A {t[-1] / times[0][-1]:.3f}" for n, t in zip(names[1:], times[1:])),
                flush=True,
            )
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}; backend {args.backend}")
    print(f"common = {' '.join(common)!r}")
    print(f"{args.pairs} rounds")
    base = statistics.median(times[0])
    for name, options, side_times in zip(names, sides, times):
        median = statistics.median(side_times)
        print(f"{name} = {options!r}: median epoch {median:.4f} s; {name}/A = {median / base:.3f}")


if __name__ == "__main__":
    main()
