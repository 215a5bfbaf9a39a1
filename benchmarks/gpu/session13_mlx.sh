#!/usr/bin/env bash
# Fourth H200 pass, part 2 (issue 17): the MLX fast loop with window pooling and MLX's CUDA graphs
# off, against tuned: the variants in one process per setting, a GPU trace, then the bench.
#   A:  bash benchmarks/gpu/session12_mlx.sh A 2>&1 | tee $OUT/a.log    (carry .mlxa)
#   B1: bash benchmarks/gpu/session13_mlx.sh B1 2>&1 | tee $OUT/b1.log  (carry .mlxb .whl, right after A)
#   B2: bash benchmarks/gpu/session13_mlx.sh B2 2>&1 | tee $OUT/b2.log  (right after B1)
set -uo pipefail
OUTDIR=${OUT:-/tmp/session13-out}
RUNS=${RUNS:-/tmp/runs13}
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
V=benchmarks/gpu/mlx_fast_variants.py
summary() { python3 benchmarks/gpu/session5_summary.py "$@" 2>&1 | grep -v '^$' | cut -c1-600; }
if [ "${1:-B1}" = B1 ]; then
  cat /tmp/parts/part_* .mlxb/part_* > /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
    /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl .mlxb/mlx-0.32.4-*.whl .whl/*.whl
  python3 -c "import mlx.core as mx; print('mlx', mx.__version__, mx.is_available(mx.gpu))"
  date -u +%H:%M:%S; python3 $V --shape mnist --knobs ,MLX_USE_CUDA_GRAPHS=0 --rounds 2 --variants tuned,sliced,fast
  date -u +%H:%M:%S; MLX_USE_CUDA_GRAPHS=0 python3 $V --shape mnist --trace fast 2>&1 | grep -v -i warn
  date -u +%H:%M:%S; python3 $V --shape cifar --knobs ,MLX_USE_CUDA_GRAPHS=0 --rounds 1 --variants tuned,fast
  date -u +%H:%M:%S
else
  for shape in synthetic synthetic-cifar; do
    date -u +%H:%M:%S
    python3 -m cnnprof.cli bench --backends mlx_gpu --loops seed,tuned,fast --dataset $shape --epochs 5 \
      --batch-size 512 --single-inference 1000 --out "$RUNS/$shape" | tail -2
    summary "$RUNS"/$shape/*-bench | tee "$OUTDIR/summary_mlx_$shape.md"
  done
  find "$RUNS" -name run.json | xargs grep -h -o '"loop_notes": \[[^]]*\]' | sort -u | cut -c1-500
  date -u +%H:%M:%S
fi
