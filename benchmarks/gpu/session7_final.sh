#!/usr/bin/env bash
# The last GPU pass of the session (H200): part A (torch only), part B (after MLX is installed).
#   bash benchmarks/gpu/session7_final.sh A | tee $OUT/a.log ;  bash benchmarks/gpu/session7_final.sh B | tee $OUT/b.log
# A: the step and sync hooks' cost per call; a heavier user CNN (width 128, batch 512: expected
#    compute-bound with the GPU busy > 90 %); the live panel's cost (benchmarks/gpu/live_cost.sh);
#    the torch_cpu bench of seed / tuned / fast on a subset.
# B: mlx_gpu --loop seed on this fresh machine (MLX compiles its CUDA kernels: expected warmup, not
#    sync-bound), then the seed / tuned / fast bench of torch_cuda and mlx_gpu (session5_fast.sh).
set -uo pipefail
OUTDIR=${OUT:-/tmp/session7-out}
RUNS=${RUNS:-/tmp/runs7}
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
summary() {  # the verdict and findings of one run directory, from diagnose --json
  python3 -m cnnprof.cli diagnose --json "$1" > "$OUTDIR/$2.json"
  python3 benchmarks/gpu/verdict_summary.py "$OUTDIR/$2.json"
}
if [ "${1:-A}" = A ]; then
  python3 benchmarks/sync_hook_cost.py hooks steps
  python3 -m cnnprof.cli profile --no-report --out "$RUNS/heavy" -- benchmarks/gpu/user_cnn.py --epochs 4 \
    --width 128 --batch 512 | tail -4
  summary "$RUNS"/heavy/* heavy
  OUT=$OUTDIR RUNS=$RUNS bash benchmarks/gpu/live_cost.sh 2>&1 | tail -15
  python3 -m cnnprof.cli bench --backends torch_cpu --loops seed,tuned,fast --dataset synthetic --epochs 5 \
    --batch-size 512 --train-images 6000 --test-images 1000 --single-inference 200 --out "$RUNS/cpu" | tail -12
  cp "$RUNS"/cpu/*-bench/bench.md "$OUTDIR/bench_cpu.md" 2>/dev/null
  python3 benchmarks/gpu/session5_summary.py "$RUNS"/cpu/*-bench > "$OUTDIR/summary_cpu.md" 2>&1
else
  python3 -m cnnprof.cli run --backend mlx_gpu --loop seed --dataset synthetic --epochs 5 --no-report \
    --out "$RUNS/mlx-fresh" | tail -4
  summary "$RUNS"/mlx-fresh/* mlx_fresh_seed
  CPU=0 OUT=$OUTDIR RUNS=$RUNS/bench bash benchmarks/gpu/session5_fast.sh 2>&1 | tail -30
fi
ls -la "$OUTDIR"
