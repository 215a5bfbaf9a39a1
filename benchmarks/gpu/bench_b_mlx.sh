#!/usr/bin/env bash
# Issue 6 on the GPU machine, MLX part: mlx_gpu (CUDA backend, 10 epochs) on both shapes, and
# mlx_cpu (1 epoch of 5,400 images: MLX's CPU backend takes ~186 s for a full epoch there).
set -x
B=${BENCH:-/tmp/bench}
for ds in synthetic synthetic-cifar; do
  python3 -m cnnprof.cli bench --backends mlx_gpu --dataset "$ds" --epochs 10 --out "$B"
done
python3 -m cnnprof.cli bench --backends mlx_cpu --dataset synthetic --epochs 1 --train-images 5400 \
  --test-images 1000 --single-inference 200 --out "$B"
