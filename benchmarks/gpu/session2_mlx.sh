#!/usr/bin/env bash
# MLX (CUDA backend) on the GPU machine, then the remaining overhead pairs for torch_cuda.
set -x
RUNS=${RUNS:-/tmp/runs}
python3 -c "import mlx.core as mx; print(mx.__version__, mx.default_device(), mx.is_available(mx.gpu))"
for loop in seed tuned; do
  python3 -m cnnprof.cli run --backend mlx_gpu --loop "$loop" --epochs 5 --out "$RUNS/mlx-$loop"
done
python3 -m cnnprof.cli run --backend mlx_gpu --loop tuned --sync lazy --epochs 3 --single-inference 1000 --out "$RUNS/mlx-lazy"
for d in "$RUNS"/mlx-*/*/; do python3 -m cnnprof.cli diagnose "$d"; done
