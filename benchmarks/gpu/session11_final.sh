#!/usr/bin/env bash
# Third H200 pass. A (torch): the study's bench of seed / tuned / fast on torch_cuda, both shapes
# (fast now compiles its model with Inductor inside the captured step), and the per-step sync
# cost by the drained GPU trace on user_cnn.py; copies MLX's wheel part A to /tmp/parts.
# B (right after A, the machine still warm): installs MLX from parts A + B, then the MLX fast-step
# variants and the mlx_gpu bench, both shapes.
#   A: bash benchmarks/gpu/session11_final.sh A 2>&1 | tee $OUT/a.log   (carry .whl .mlxa)
#   B: bash benchmarks/gpu/session11_final.sh B 2>&1 | tee $OUT/b.log   (carry .mlxb)
set -uo pipefail
OUTDIR=${OUT:-/tmp/session11-out}
RUNS=${RUNS:-/tmp/runs11}
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1
summary() { python3 benchmarks/gpu/session5_summary.py "$@" 2>&1 | grep -v '^$' | cut -c1-600; }
if [ "${1:-A}" = A ]; then
  mkdir -p /tmp/parts && cp .mlxa/* /tmp/parts/
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  python3 -m cnnprof.cli bench --backends torch_cuda --loops seed,tuned,fast --dataset synthetic --epochs 5 \
    --batch-size 512 --single-inference 1000 --out "$RUNS/mnist" | tail -2
  summary "$RUNS"/mnist/*-bench | tee "$OUTDIR/summary_torch_mnist.md"
  python3 -m cnnprof.cli bench --backends torch_cuda --loops seed,tuned,fast --dataset synthetic-cifar --epochs 5 \
    --batch-size 512 --single-inference 1000 --out "$RUNS/cifar" | tail -2
  summary "$RUNS"/cifar/*-bench | tee "$OUTDIR/summary_torch_cifar.md"
  for mode in cpu item; do
    flag=--cpu-logits; [ $mode = item ] && flag=--item-loss
    python3 -m cnnprof.cli profile --no-report --out "$RUNS/$mode" -- benchmarks/gpu/user_cnn.py --epochs 6 $flag | grep "^epoch"
    d=$(ls -d "$RUNS/$mode"/*)
    python3 -m cnnprof.cli diagnose --json "$d" > "$OUTDIR/diagnose_$mode.json"
    python3 benchmarks/gpu/verdict_summary.py "$OUTDIR/diagnose_$mode.json" | grep -i "verdict\|GPU trace\|sync-sites\|sync-bound"
  done
else
  cat /tmp/parts/part_* .mlxb/part_* > /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
    /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl .mlxb/mlx-0.32.4-*.whl
  export PYTHONPATH=/tmp/site:$PWD
  python3 -c "import mlx.core as mx; print('mlx', mx.__version__, mx.is_available(mx.gpu))"
  python3 benchmarks/gpu/mlx_fast_variants.py --shape mnist --rounds 2 2>&1 | tail -5
  python3 -m cnnprof.cli bench --backends mlx_gpu --loops seed,tuned,fast --dataset synthetic --epochs 5 \
    --batch-size 512 --single-inference 1000 --out "$RUNS/mlx_mnist" | tail -2
  summary "$RUNS"/mlx_mnist/*-bench | tee "$OUTDIR/summary_mlx_mnist.md"
  python3 -m cnnprof.cli bench --backends mlx_gpu --loops seed,tuned,fast --dataset synthetic-cifar --epochs 5 \
    --batch-size 512 --single-inference 1000 --out "$RUNS/mlx_cifar" | tail -2
  summary "$RUNS"/mlx_cifar/*-bench | tee "$OUTDIR/summary_mlx_cifar.md"
fi
