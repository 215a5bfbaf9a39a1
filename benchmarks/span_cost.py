"""What recording one span costs (issue 2: under 2 us).

    python benchmarks/span_cost.py [--n 200000]

Times n empty `with rec.span(...)` blocks against n empty loop iterations, in one process, and
prints the difference per span (median of 7 repeats).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from cnnprof.profiler.spans import SpanRecorder


def per_span_ns(n: int) -> float:
    rec = SpanRecorder()
    span = rec.span
    t0 = time.perf_counter_ns()
    for _ in range(n):
        with span("batch", "train"):
            pass
    t1 = time.perf_counter_ns()
    for _ in range(n):
        pass
    t2 = time.perf_counter_ns()
    return ((t1 - t0) - (t2 - t1)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    costs = [per_span_ns(args.n) for _ in range(7)]
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"span cost: median {statistics.median(costs):.0f} ns, min {min(costs):.0f} ns, max {max(costs):.0f} ns "
          f"over 7 x {args.n} spans")


if __name__ == "__main__":
    main()
