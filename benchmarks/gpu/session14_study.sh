#!/usr/bin/env bash
# Fourth H200 pass, part 3 (issue 17): the study in one bench per shape on the final code,
# torch_cuda and mlx_gpu x seed / tuned / fast, each run's verdict; the runs come back (no HTML).
#   A:  bash benchmarks/gpu/session12_mlx.sh A 2>&1 | tee $OUT/a.log      (carry .mlxa)
#   B1: bash benchmarks/gpu/session14_study.sh B1 2>&1 | tee $OUT/b1.log  (carry .mlxb .whl, right after A)
#   B2: bash benchmarks/gpu/session14_study.sh B2 2>&1 | tee $OUT/b2.log  (right after B1)
set -uo pipefail
OUTDIR=${OUT:-/tmp/session14-out}
RUNS=${RUNS:-/tmp/runs14}
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
summary() { python3 benchmarks/gpu/session5_summary.py "$@" 2>&1 | grep -v '^$' | cut -c1-700; }
shape=synthetic
if [ "${1:-B1}" = B1 ]; then
  cat /tmp/parts/part_* .mlxb/part_* > /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
    /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl .mlxb/mlx-0.32.4-*.whl .whl/*.whl
else
  shape=synthetic-cifar
fi
date -u +%H:%M:%S
python3 -m cnnprof.cli bench --backends torch_cuda,mlx_gpu --loops seed,tuned,fast --dataset $shape --epochs 5 \
  --batch-size 512 --single-inference 1000 --out "$RUNS/$shape" | tail -12
summary "$RUNS"/$shape/*-bench | tee "$OUTDIR/summary_$shape.md"
(cd /tmp && tar czf "$OUTDIR/runs14_$shape.tgz" --exclude='*.html' "runs14/$shape")
date -u +%H:%M:%S
