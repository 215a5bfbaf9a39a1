#!/usr/bin/env bash
# Fourth H200 pass, last check: the final code's MLX fast loop on a fresh machine, its loop notes.
#   A: bash benchmarks/gpu/session12_mlx.sh A 2>&1 | tee $OUT/a.log   (carry .mlxa)
#   B: bash benchmarks/gpu/session15_check.sh 2>&1 | tee $OUT/b.log   (carry .mlxb .whl, right after A)
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
cat /tmp/parts/part_* .mlxb/part_* > /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
  /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl .mlxb/mlx-0.32.4-*.whl .whl/*.whl
python3 -m cnnprof.cli run --backend mlx_gpu --loop fast --epochs 3 --no-report --out /tmp/runs15 | tail -4
grep -h -o '"loop_notes": \[[^]]*\]' /tmp/runs15/*/run.json | cut -c1-600
