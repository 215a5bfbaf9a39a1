#!/usr/bin/env bash
# Issue 3 and 4 overhead on torch_cpu (this project's 2-core machine): telemetry at 100 and 10 ms,
# and the stack profilers, each against no observation, 5 rounds in rotation.
# `bash benchmarks/local_overhead.sh profilers` runs the profiler part only.
set -x
COMMON="--epochs 3 --train-images 4096 --test-images 512 --single-inference 0"
if [ "${1:-all}" = all ]; then
for loop in tuned seed; do
python benchmarks/overhead.py --backend torch_cpu --pairs 5 --base "--telemetry none --profiler none --loop $loop" \
  --with "--telemetry auto --telemetry-interval-ms 100 --profiler none --loop $loop" -- $COMMON
done
python benchmarks/overhead.py --backend torch_cpu --pairs 5 --base "--telemetry none --profiler none --loop tuned" \
  --with "--telemetry auto --telemetry-interval-ms 10 --profiler none --loop tuned" -- $COMMON
fi
# The stack profilers (issue 4): the default sampler and pyinstrument, in rotation with none.
for loop in tuned seed; do
python benchmarks/overhead.py --backend torch_cpu --pairs 5 --base "--telemetry none --profiler none --loop $loop" \
  --with "--telemetry none --profiler sampler --loop $loop" \
  --with "--telemetry none --profiler pyinstrument --loop $loop" -- $COMMON
done
