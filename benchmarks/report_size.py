"""How long `build_report` takes on a long run, and how big the report gets.

Builds a synthetic run directory the size of the study's 30-epoch runs (30 epochs of ~38 s, 106
training batches each; telemetry every 100 ms from powermetrics, nvml (+ its 20 ms power samples),
procfs and rapl: ~50 series; 1 ms stack samples, ~1.2 M of them over ~1,500 distinct stacks; a
cProfile table), then times `build_report` on it and prints seconds and MB.

    .venv/bin/python benchmarks/report_size.py [--epochs 30] [--keep DIR] [--out FILE]

Targets: < 10 s and < 15 MB on a 2-core CI machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from report_runs import make_run  # noqa: E402

from cnnprof.reports.html import build_report  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--variety", type=int, default=60, help="leaf variants per call site (distinct stacks)")
    parser.add_argument("--keep", type=Path, default=None, help="write the run directory here and keep it")
    parser.add_argument("--out", type=Path, default=None, help="where the report goes (default: in the run directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        t = time.perf_counter()
        make_run(
            run_dir,
            epochs=args.epochs,
            batches=106,
            val_batches=12,
            test_batches=20,
            single=10000,
            batch_ms=350.0,
            telemetry=("powermetrics", "nvml", "procfs", "rapl"),
            interval_ms=100,
            cores=8,
            samples=True,
            sample_ms=1.0,
            variety=args.variety,
            cprofile=True,
        )
        made = time.perf_counter() - t

        import json

        import pyarrow.parquet as pq

        samples = pq.read_metadata(run_dir / "samples.parquet").num_rows
        stacks = len(json.loads((run_dir / "stacks.json").read_text())["stacks"])
        telemetry = pq.read_metadata(run_dir / "telemetry.parquet").num_rows
        spans = pq.read_metadata(run_dir / "spans.parquet").num_rows
        out = args.out or run_dir / "report.html"
        t = time.perf_counter()
        build_report([run_dir], out)
        seconds = time.perf_counter() - t
        mb = out.stat().st_size / 1e6
        print(
            f"run directory: {spans:,} spans, {telemetry:,} telemetry rows, {samples:,} stack samples over "
            f"{stacks:,} distinct stacks "
            f"(written in {made:.1f} s)"
        )
        print(f"build_report: {seconds:.2f} s, {mb:.2f} MB ({out})")
        ok = seconds < 10 and mb < 15
        print("targets (< 10 s, < 15 MB):", "met" if ok else "NOT met")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
