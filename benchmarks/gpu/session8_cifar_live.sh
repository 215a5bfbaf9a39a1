#!/usr/bin/env bash
# The CIFAR-shaped half of the study's re-run on the H200 and the live panel's cost with more
# rounds (issue 17: both shapes; issue 13: --live over without on the tuned loop).
#   X: bash benchmarks/gpu/session8_cifar_live.sh torch | tee $OUT/x.log   (plotly etc. from .whl)
#   Y: bash benchmarks/gpu/session8_cifar_live.sh mlx   | tee $OUT/y.log   (after mlx is installed)
set -uo pipefail
OUTDIR=${OUT:-/tmp/session8-out}
RUNS=${RUNS:-/tmp/runs8}
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
COMMON=(--dataset synthetic-cifar --epochs 5 --batch-size 512 --single-inference 1000)
if [ "${1:-torch}" = torch ]; then
  python3 benchmarks/live_cost.py --backend torch_cuda --pairs 11 \
    -- --loop tuned --epochs 6 --single-inference 0 --test-images 512 | tee "$OUTDIR/live_cost11.txt"
  python3 -m cnnprof.cli bench --backends torch_cuda --loops seed,tuned,fast "${COMMON[@]}" --out "$RUNS/gpu" | tail -3
  python3 -m cnnprof.cli bench --backends torch_cpu --loops seed,tuned,fast --dataset synthetic-cifar --epochs 3 \
    --batch-size 512 --train-images 6000 --test-images 1000 --single-inference 200 --out "$RUNS/cpu" | tail -3
  python3 benchmarks/gpu/session5_summary.py "$RUNS"/gpu/*-bench "$RUNS"/cpu/*-bench > "$OUTDIR/summary_torch.md" 2>&1
else
  python3 -m cnnprof.cli bench --backends mlx_gpu --loops seed,tuned,fast "${COMMON[@]}" --out "$RUNS/mlx" | tail -3
  python3 benchmarks/gpu/session5_summary.py "$RUNS"/mlx/*-bench > "$OUTDIR/summary_mlx.md" 2>&1
fi
cat "$OUTDIR"/summary_*.md | grep -v '^$' | cut -c1-400
