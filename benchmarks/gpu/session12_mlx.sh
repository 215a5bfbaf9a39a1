#!/usr/bin/env bash
# Fourth H200 pass, part 1 (issue 17: mlx_gpu fast must beat tuned): where the MLX step's time goes
# and which way of running it is fastest, before the loop changes.
#   A: bash benchmarks/gpu/session12_mlx.sh A 2>&1 | tee $OUT/a.log   (carry .mlxa)
#   B: bash benchmarks/gpu/session12_mlx.sh B 2>&1 | tee $OUT/b.log   (carry .mlxb, right after A)
set -uo pipefail
OUTDIR=${OUT:-/tmp/session12-out}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
if [ "${1:-A}" = A ]; then
  mkdir -p /tmp/parts && cp .mlxa/* /tmp/parts/ && ls -la /tmp/parts
  exit 0
fi
cat /tmp/parts/part_* .mlxb/part_* > /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
  /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl .mlxb/mlx-0.32.4-*.whl
export PYTHONPATH=/tmp/site:$PWD
python3 -c "import mlx.core as mx; print('mlx', mx.__version__, mx.is_available(mx.gpu))"
V=benchmarks/gpu/mlx_fast_variants.py
date -u +%H:%M:%S; python3 $V --shape mnist --rounds 2 --variants tuned,fast,fast-k2,fast-k4,fast-pool
date -u +%H:%M:%S; for v in tuned fast fast-k4 fast-pool; do python3 $V --shape mnist --trace $v 2>&1 | grep -v Warning; done
date -u +%H:%M:%S; python3 $V --shape mnist --knobs --rounds 2 --epochs 4 --variants tuned,fast,fast-k4
date -u +%H:%M:%S; python3 $V --shape cifar --rounds 1 --variants tuned,fast,fast-k4,fast-pool
date -u +%H:%M:%S; du -sh /tmp/mlx 2>/dev/null; ls /tmp/mlx/*/ptx 2>/dev/null | wc -l
