#!/usr/bin/env bash
# Issue 3 (telemetry at 10 ms) and issue 4 (default profiler) overhead on torch_cuda, tuned loop.
set -x
python3 benchmarks/overhead.py --backend torch_cuda --pairs 5 \
  --base "--telemetry none --profiler none --loop tuned" \
  --with "--telemetry auto --telemetry-interval-ms 10 --profiler none --loop tuned" \
  -- --epochs 4 --single-inference 0 --test-images 512
python3 benchmarks/overhead.py --backend torch_cuda --pairs 5 \
  --base "--telemetry none --profiler none --loop tuned" \
  --with "--telemetry none --profiler pyinstrument --loop tuned" \
  -- --epochs 4 --single-inference 0 --test-images 512
# Issue 4: the per-batch .item() alone (tuned input path, seed sync policy).
python3 -m cnnprof.cli run --backend torch_cuda --loop tuned --sync batch --epochs 3 --single-inference 1000 --no-report --out "${RUNS:-/tmp/runs}/cuda-tuned-syncbatch"
python3 -m cnnprof.cli diagnose "${RUNS:-/tmp/runs}"/cuda-tuned-syncbatch/*/ --json
