#!/usr/bin/env bash
# Issue 6 on the GPU machine, CPU backends on CIFAR-shaped data (same limits as above).
set -x
B=${BENCH:-/tmp/bench}
python3 -m cnnprof.cli bench --backends torch_cpu --dataset synthetic-cifar --epochs 3 --single-inference 1000 --out "$B"
python3 -m cnnprof.cli bench --backends mlx_cpu --dataset synthetic-cifar --epochs 1 --train-images 4500 \
  --test-images 1000 --single-inference 200 --out "$B"
