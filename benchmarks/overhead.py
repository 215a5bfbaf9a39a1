"""Observation overhead: median epoch time of `cnnprof run` with an observer over without.

    python benchmarks/overhead.py --backend torch_cpu --pairs 5 \
        --base "--telemetry none --profiler none" --with "--telemetry auto --profiler none" \
        -- --train-images 4096 --epochs 3 --single-inference 0

Runs A (base) and B (with) alternately, `--pairs` times each, as separate `cnnprof run`
processes, so drift on a shared machine hits both sides alike. Per run it takes the median epoch
time of epochs 2.. (epoch 1 pays start-up), then prints the median over runs of each side and
their ratio B / A, and the ratio of each adjacent pair (their spread shows the noise).
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
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--base", default="--telemetry none --profiler none", help="options of side A")
    parser.add_argument("--with", dest="with_", required=True, help="options of side B")
    parser.add_argument("common", nargs=argparse.REMAINDER, help="after --: options for both sides")
    args = parser.parse_args()
    common = [a for a in args.common if a != "--"]
    a_times: list[float] = []
    b_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            a_times.append(one_run(args.backend, shlex.split(args.base) + common, Path(tmp) / f"a{i}"))
            b_times.append(one_run(args.backend, shlex.split(args.with_) + common, Path(tmp) / f"b{i}"))
            print(
                f"pair {i + 1}: A {a_times[-1]:.4f} s  B {b_times[-1]:.4f} s  B/A {b_times[-1] / a_times[-1]:.3f}",
                flush=True,
            )
    ratio = statistics.median(b_times) / statistics.median(a_times)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}; backend {args.backend}")
    print(f"A = {args.base!r}; B = {args.with_!r}; common = {' '.join(common)!r}")
    print(
        f"median epoch s: A {statistics.median(a_times):.4f}, B {statistics.median(b_times):.4f}; "
        f"ratio B/A = {ratio:.3f} over {args.pairs} pairs"
    )


if __name__ == "__main__":
    main()
