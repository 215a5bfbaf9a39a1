#!/usr/bin/env bash
# Issue 16: DDP on 2 GPUs of one host (nvidia-h200-x2), NCCL, profiled by cnnprof, both launch forms.
#   bash benchmarks/gpu/session6_ddp2.sh 2>&1 | tee "$OUT/session6.log"
# The study's CNN and a heavier one (benchmarks/gpu/ddp_cnn.py), balanced and imbalanced (rank 1 sleeps
# 20 ms on the host each step: "host"; or does 40 extra bf16 matmuls on its GPU: "device"); then the findings and per-rank tables of each job, GPU busy and power per
# device from the host's one sampler (rank 0's telemetry: gpu0.* and gpu1.*), and the overhead of
# observation (unobserved torchrun vs cnnprof, alternating). The job directories land under $OUT; their
# reports are built afterwards where plotly is installed: cnnprof report $OUT/runs/<job>.
set -x
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on these machines
OUT=${OUT:-/tmp/out}
RUNS="$OUT/runs"
mkdir -p "$RUNS"
nvidia-smi -L
python3 -c "import torch; print(torch.__version__, torch.cuda.device_count(), torch.cuda.nccl.version())"
TRAIN=benchmarks/gpu/ddp_cnn.py
STEPS=${STEPS:-300}

summary() {  # the job's findings, per-rank table, GPU busy / power per device
  python3 -m cnnprof.cli diagnose "$1" --json > "$1/diagnose.json"
  python3 -m cnnprof.cli diagnose "$1"
  python3 - "$1" <<'PY'
import sys
from cnnprof.reports.diagnosis.job_context import JobContext
from cnnprof.reports.diagnosis.rank_imbalance import ddp_waits
from cnnprof.traces.job import JobData
job = JobData(sys.argv[1])
ctx = JobContext(job)
print(f"{job.path.name}: {job.status}")
waits = ddp_waits(ctx.with_steps)
print("rank  steps  step_ms  work_ms  in_collectives_ms  in_ddp_backward_ms  MB_per_step")
for rank, v in ctx.ranks.items():
    w = waits.get(rank, 0.0)
    print(f"{rank:4d}  {len(v.steps):5d}  {v.median_step_s*1e3:7.2f}  {(v.median_busy_s - w)*1e3:7.2f}  "
          f"{v.median_comm_s*1e3:17.2f}  {w*1e3:18.2f}  {ctx.bytes_per_step(v)/1e6:11.3f}")
tel = job.ranks[0].telemetry
if not tel.empty:
    tel = tel[tel["source"] == "nvml"]
    for metric in sorted(m for m in tel["metric"].unique() if m.endswith(("gpu_util_pct", "power_w"))):
        values = tel[tel["metric"] == metric]["value"]
        print(f"nvml {metric}: mean {values.mean():.1f}, max {values.max():.1f} ({len(values)} samples)")
PY
}

for model in study heavy; do
  for variant in balanced host device; do
    extra=""
    [ "$variant" = host ] && extra="--slow-rank 1 --extra-host-ms 20"
    [ "$variant" = device ] && extra="--slow-rank 1 --extra-matmuls 40"
    python3 -m cnnprof.cli profile --nproc-per-node 2 --no-report --out "$RUNS/cnnprof-$model-$variant" \
      -- "$TRAIN" --model "$model" --steps "$STEPS" $extra
    summary "$(ls -d "$RUNS/cnnprof-$model-$variant"/*/ | head -1)"
    python3 -m torch.distributed.run --standalone --nproc-per-node 2 -m cnnprof profile --no-report \
      --out "$RUNS/torchrun-$model-$variant" -- "$TRAIN" --model "$model" --steps "$STEPS" $extra
    summary "$(ls -d "$RUNS/torchrun-$model-$variant"/*/ | head -1)"
  done
done

# Overhead of observation on the 2-GPU run: plain torchrun vs cnnprof profile, alternating, 3 pairs each;
# the script prints its own median step per rank.
for model in study heavy; do
  for pair in 1 2 3; do
    echo "== plain $model pair $pair"
    python3 -m torch.distributed.run --standalone --nproc-per-node 2 "$TRAIN" --model "$model" --steps "$STEPS"
    echo "== observed $model pair $pair"
    python3 -m cnnprof.cli profile --nproc-per-node 2 --no-report --out "$RUNS/overhead-$model-$pair" \
      -- "$TRAIN" --model "$model" --steps "$STEPS"
  done
done
