#!/usr/bin/env bash
# Issue 4 on the GPU machine, second pass: the signal sampler (the default profiler) against
# pyinstrument, the hook cost on CUDA tensors, and the sync-bound rule on real CUDA runs.
# Run from the repo root with cnnprof and pyinstrument importable. Part 1 or 2 (or both).
set -x
RUNS=${RUNS:-/tmp/runs}
OUTDIR=${OUT:-/tmp}
part=${1:-all}
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
if [ "$part" = 1 ] || [ "$part" = all ]; then
  python3 benchmarks/sync_hook_cost.py hooks
  # Default profiler overhead on the tuned loop: none / sampler / pyinstrument in rotation.
  python3 benchmarks/overhead.py --backend torch_cuda --pairs 4 \
    --base "--telemetry none --profiler none --loop tuned" \
    --with "--telemetry none --profiler sampler --loop tuned" \
    --with "--telemetry none --profiler pyinstrument --loop tuned" \
    -- --epochs 6 --single-inference 0 --test-images 512
  # sync-bound on real CUDA work, both splits (NVML telemetry on, the default).
  for mode in device serial; do
    python3 -m cnnprof.cli profile --no-report --out "$RUNS/split-$mode" -- benchmarks/gpu/sync_split.py "$mode" 8
    python3 -m cnnprof.cli diagnose "$RUNS"/split-"$mode"/*/ --json > "$OUTDIR/split-$mode.json"
    python3 -m cnnprof.cli diagnose "$RUNS"/split-"$mode"/*/
  done
fi
if [ "$part" = 2 ] || [ "$part" = all ]; then
  # Is the seed loop sync-bound here? The same loop with its per-batch .item() vs one read per epoch.
  python3 benchmarks/overhead.py --backend torch_cuda --pairs 3 \
    --base "--telemetry none --profiler none --loop seed" \
    --with "--telemetry none --profiler none --loop seed --sync epoch" \
    -- --epochs 4 --single-inference 0 --test-images 512
  # The default observation (sampler + telemetry) on both loops, and what diagnose says.
  for loop in seed tuned; do
    python3 -m cnnprof.cli run --backend torch_cuda --loop "$loop" --epochs 5 --no-report --out "$RUNS/cuda-$loop"
    python3 -m cnnprof.cli diagnose "$RUNS"/cuda-"$loop"/*/ --json > "$OUTDIR/cuda-$loop.json"
    python3 -m cnnprof.cli diagnose "$RUNS"/cuda-"$loop"/*/
  done
  # Sampler vs pyinstrument on the seed loop (host-bound: the most Python calls per second).
  python3 benchmarks/overhead.py --backend torch_cuda --pairs 3 \
    --base "--telemetry none --profiler none --loop seed" \
    --with "--telemetry none --profiler sampler --loop seed" \
    --with "--telemetry none --profiler pyinstrument --loop seed" \
    -- --epochs 4 --single-inference 0 --test-images 512
fi
