#!/usr/bin/env bash
# Issue 10's open item on the H200: what a per-step sync costs, by cnnprof's GPU trace (CUPTI via
# torch.profiler, profiler/gpu_trace.py) against side-by-side runs without the sync; and (issue 17)
# where the torch fast loop's GPU time goes.
#   bash benchmarks/gpu/session9_sync_cost.sh 2>&1 | tee $OUT/log
set -uo pipefail
OUTDIR=${OUT:-/tmp/session9-out}
RUNS=${RUNS:-/tmp/runs9}
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site/plotly ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
S=benchmarks/gpu/user_cnn.py
EPOCHS=${EPOCHS:-6}
echo "== side by side, plain python (no cnnprof): without a sync, with logits.cpu(), with loss.item(); 3 rounds"
for r in 1 2 3; do
  for mode in plain cpu item; do
    flag=""; [ $mode = cpu ] && flag=--cpu-logits; [ $mode = item ] && flag=--item-loss
    python3 $S --epochs $EPOCHS $flag | awk -v m=$mode -v r=$r '{print "round", r, m, $0}'
  done
done | tee "$OUTDIR/ab.txt"
python3 - "$OUTDIR/ab.txt" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) >= 6 and p[3] == "epoch" and int(p[4]) >= 1:
        rows.setdefault(p[2], []).append(float(p[5]))
plain = statistics.median(rows["plain"])
for m, v in rows.items():
    print(f"{m}: median epoch {statistics.median(v):.4f} s over {len(v)} epochs; x plain {statistics.median(v) / plain:.4f}")
PY
echo "== cnnprof profile, each mode (the GPU trace on by default)"
for mode in plain cpu item; do
  flag=""; [ $mode = cpu ] && flag=--cpu-logits; [ $mode = item ] && flag=--item-loss
  python3 -m cnnprof.cli profile --no-report --out "$RUNS/$mode" -- $S --epochs $EPOCHS $flag | tail -3
  d=$(ls -d "$RUNS/$mode"/*)
  python3 -c "import json,sys; print('gpu_trace', json.load(open(sys.argv[1]+'/run.json')).get('gpu_trace'))" "$d"
  python3 -m cnnprof.cli diagnose --json "$d" > "$OUTDIR/diagnose_$mode.json"
  python3 benchmarks/gpu/verdict_summary.py "$OUTDIR/diagnose_$mode.json"
  cp "$d/gpu_trace.json" "$OUTDIR/gpu_trace_$mode.json" 2>/dev/null
done
echo "== torch_cuda --loop fast under cnnprof (3 epochs), its verdict with the GPU trace"
python3 -m cnnprof.cli run --backend torch_cuda --loop fast --dataset synthetic --epochs 3 --no-report --out "$RUNS/fast" | tail -4
d=$(ls -d "$RUNS/fast"/*)
python3 -m cnnprof.cli diagnose --json "$d" > "$OUTDIR/diagnose_fast.json"
python3 benchmarks/gpu/verdict_summary.py "$OUTDIR/diagnose_fast.json"
python3 -c "import json,sys; print('gpu_trace', json.load(open(sys.argv[1]+'/run.json')).get('gpu_trace'))" "$d"
echo "== torch fast-loop variants and kernels"
python3 benchmarks/gpu/torch_fast_variants.py --shape mnist 2>&1 | grep -v USDT
