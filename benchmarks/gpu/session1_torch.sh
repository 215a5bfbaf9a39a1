#!/usr/bin/env bash
# Issue 2, 3 and 4 figures for torch_cuda on the GPU machine (H100). Run from the repo root with
# cnnprof importable (PYTHONPATH=$PWD plus the wheels in .whl). Writes runs under $RUNS.
set -x
RUNS=${RUNS:-/tmp/runs}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
python3 -m cnnprof.cli doctor
# Issue 2 (both loops, 5 epochs) with the default observation: telemetry auto, pyinstrument.
for loop in seed tuned; do
  python3 -m cnnprof.cli run --backend torch_cuda --loop "$loop" --epochs 5 --out "$RUNS/cuda-$loop"
done
for d in "$RUNS"/cuda-*/*/; do
  python3 benchmarks/nvml_check.py "$d"
  python3 -m cnnprof.cli diagnose "$d"
done
python3 benchmarks/telemetry_jitter.py --sources nvml,procfs --intervals 100,10 --seconds 3
# Issue 3: telemetry overhead at 100 ms (tuned loop: the most sensitive to host stalls).
python3 benchmarks/overhead.py --backend torch_cuda --pairs 5 \
  --base "--telemetry none --profiler none --loop tuned" \
  --with "--telemetry auto --telemetry-interval-ms 100 --profiler none --loop tuned" \
  -- --epochs 4 --single-inference 0 --test-images 512
