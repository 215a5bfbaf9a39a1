#!/usr/bin/env bash
# Issue 17 on the GPU machine (H200): seed / tuned / fast in one `cnnprof bench` on torch_cuda (and
# mlx_gpu when it imports with a GPU), MNIST-shaped synthetic data, 5 epochs, batch 512; then
# torch_cpu on a subset (6,000 images) so it fits. Prints per run the median epoch (epochs 2..5),
# the ratios to seed and tuned, the final validation accuracy, the GPU energy per training image
# and cnnprof's verdict (benchmarks/gpu/session5_summary.py), and copies the summary, the bench
# tables, the comparison reports and the run folders (without their HTML) to $OUT.
#
# Run from the repo root, with plotly / pyinstrument / narwhals wheels in .whl/ (the machine has
# neither plotly nor pyinstrument):  bash benchmarks/gpu/session5_fast.sh 2>&1 | tee $OUT/log.txt
#   MLX=0  leave mlx_gpu out even when it imports;  CPU=0  skip the torch_cpu bench.
#   mlx (mlx + mlx-cuda-13) is not in .whl: install it first (e.g. into /tmp/site) and export its
#   folder in PYTHONPATH; the script keeps PYTHONPATH and adds mlx_gpu when `import mlx.core` sees a GPU.
# Budget: ~1.5 min torch_cuda, ~3 min mlx_gpu on a fresh machine (its first run compiles MLX's
# CUDA kernels, ~100 s), ~1.5 min torch_cpu.
set -uo pipefail
OUTDIR=${OUT:-/tmp/session5-out}
RUNS=${RUNS:-/tmp/runs5}
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1

# Our own target folder, and any PYTHONPATH already set kept: mlx may have been installed elsewhere first.
WHEELS=${WHEELS:-.whl}
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site5 "$WHEELS"/*.whl \
    || { echo "installing the wheels in $WHEELS failed"; exit 1; }
  export PYTHONPATH=/tmp/site5:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv,noheader
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
python3 -c "import plotly, pyinstrument; print('plotly', plotly.__version__, 'pyinstrument', pyinstrument.__version__)"

backends=torch_cuda
if [ "${MLX:-1}" != 0 ] && python3 -c "import mlx.core as mx; assert mx.is_available(mx.gpu); print('mlx', mx.__version__)"; then
  backends=$backends,mlx_gpu
else
  echo "mlx_gpu left out (MLX=0, or mlx does not import with a GPU here)"
fi

COMMON=(--dataset synthetic --epochs 5 --batch-size 512)
python3 -m cnnprof.cli bench --backends "$backends" --loops seed,tuned,fast "${COMMON[@]}" \
  --single-inference 1000 --out "$RUNS/gpu"
if [ "${CPU:-1}" != 0 ]; then
  python3 -m cnnprof.cli bench --backends torch_cpu --loops seed,tuned,fast "${COMMON[@]}" \
    --train-images 6000 --test-images 1000 --single-inference 200 --out "$RUNS/cpu"
fi

# A fast run that failed in the bench shows only its last line there: re-run it small for the traceback.
for b in ${backends//,/ }; do
  if ! ls "$RUNS"/gpu/*-bench/"$b"-fast/*/run.json >/dev/null 2>&1; then
    echo "== $b fast did not finish in the bench; a 1-epoch re-run with the traceback:"
    CNNPROF_DEBUG=1 python3 -m cnnprof.cli run --backend "$b" --loop fast --dataset synthetic --epochs 1 \
      --train-images 4096 --test-images 512 --single-inference 0 --telemetry none --profiler none --no-report \
      --out "$RUNS/debug-$b" 2>&1 | tail -40
  fi
done

python3 benchmarks/gpu/session5_summary.py "$RUNS"/gpu/*-bench "$RUNS"/cpu/*-bench | tee "$OUTDIR/summary.md"

# Back to the lead (at most 8 files, 16 MB each): compressed when a report is large.
for part in gpu cpu; do
  for bench in "$RUNS/$part"/*-bench; do
    [ -d "$bench" ] || continue
    cp "$bench/bench.md" "$OUTDIR/bench_$part.md"
    if [ -f "$bench/compare.html" ]; then
      if [ "$(stat -c %s "$bench/compare.html")" -gt 15000000 ]; then
        gzip -c "$bench/compare.html" > "$OUTDIR/compare_$part.html.gz"
      else
        cp "$bench/compare.html" "$OUTDIR/compare_$part.html"
      fi
    fi
  done
done
tar -C "$RUNS" --exclude='*.html' --exclude='*.pyisession' -czf "$OUTDIR/runs.tar.gz" gpu cpu 2>/dev/null \
  || tar -C "$RUNS" --exclude='*.html' --exclude='*.pyisession' -czf "$OUTDIR/runs.tar.gz" gpu
ls -la "$OUTDIR"
