#!/usr/bin/env bash
# Issue 6 on the GPU machine, PyTorch part: torch_cuda (10 epochs) and torch_cpu (16 cores, 3
# epochs, 1,000 single images) on MNIST- and CIFAR-shaped synthetic data, both loops.
set -x
B=${BENCH:-/tmp/bench}
for ds in synthetic synthetic-cifar; do
  python3 -m cnnprof.cli bench --backends torch_cuda --dataset "$ds" --epochs 10 --out "$B"
done
python3 -m cnnprof.cli bench --backends torch_cpu --dataset synthetic --epochs 3 --single-inference 1000 --out "$B"
# Issue 4: the default profiler (pyinstrument, now with its timing thread) on the tuned loop.
python3 benchmarks/overhead.py --backend torch_cuda --pairs 5 \
  --base "--telemetry none --profiler none --loop tuned" \
  --with "--telemetry none --profiler pyinstrument --loop tuned" \
  -- --epochs 4 --single-inference 0 --test-images 512
