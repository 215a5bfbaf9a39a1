#!/usr/bin/env bash
# Issue 3 and 4 overhead on torch_cpu (this project's 2-core machine): telemetry at 100 and 10 ms,
# and the default profiler, each against no observation, 5 alternating pairs.
set -x
COMMON="--epochs 3 --train-images 4096 --test-images 512 --single-inference 0"
for loop in tuned seed; do
python benchmarks/overhead.py --backend torch_cpu --pairs 5 --base "--telemetry none --profiler none --loop $loop" \
  --with "--telemetry auto --telemetry-interval-ms 100 --profiler none --loop $loop" -- $COMMON
done
python benchmarks/overhead.py --backend torch_cpu --pairs 5 --base "--telemetry none --profiler none --loop tuned" \
  --with "--telemetry auto --telemetry-interval-ms 10 --profiler none --loop tuned" -- $COMMON
python benchmarks/overhead.py --backend torch_cpu --pairs 5 --base "--telemetry none --profiler none --loop tuned" \
  --with "--telemetry none --profiler pyinstrument --loop tuned" -- $COMMON
