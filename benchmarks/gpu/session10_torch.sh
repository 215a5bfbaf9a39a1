#!/usr/bin/env bash
# Second H200 pass (torch): the sync cost by the GPU-work estimate (reports/diagnosis/sync_cost.py)
# on user_cnn.py with a per-step logits.cpu() and loss.item(), more side-by-side rounds, the
# fast loop's verdict with the deferred epoch-end wait, and the fast loop's variants.
#   bash benchmarks/gpu/session10_torch.sh 2>&1 | tee $OUT/log
set -uo pipefail
OUTDIR=${OUT:-/tmp/session10-out}
RUNS=${RUNS:-/tmp/runs10}
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site/plotly ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
S=benchmarks/gpu/user_cnn.py
EPOCHS=${EPOCHS:-6}
for mode in plain cpu item; do
  flag=""; [ $mode = cpu ] && flag=--cpu-logits; [ $mode = item ] && flag=--item-loss
  python3 -m cnnprof.cli profile --no-report --out "$RUNS/$mode" -- $S --epochs $EPOCHS $flag | grep "^epoch"
  d=$(ls -d "$RUNS/$mode"/*)
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]+'/run.json')); p=r['profiler']; print('gpu_trace', r.get('gpu_trace'), 'sampler_self_s', p.get('sampler_self_s'), 'samples', p.get('samples'))" "$d"
  python3 -m cnnprof.cli diagnose --json "$d" > "$OUTDIR/diagnose_$mode.json"
  python3 benchmarks/gpu/verdict_summary.py "$OUTDIR/diagnose_$mode.json"
done
echo "== side by side, plain python, rounds 4-5"
for r in 4 5; do
  for mode in plain cpu item; do
    flag=""; [ $mode = cpu ] && flag=--cpu-logits; [ $mode = item ] && flag=--item-loss
    python3 $S --epochs $EPOCHS $flag | awk -v m=$mode -v r=$r '{print "round", r, m, $0}'
  done
done | tee "$OUTDIR/ab.txt" | tail -3
echo "== torch_cuda --loop fast under cnnprof (3 epochs)"
python3 -m cnnprof.cli run --backend torch_cuda --loop fast --dataset synthetic --epochs 3 --no-report --out "$RUNS/fast" | grep -i "epoch\|verdict" | head -8
d=$(ls -d "$RUNS/fast"/*)
python3 -m cnnprof.cli diagnose --json "$d" > "$OUTDIR/diagnose_fast.json"
python3 benchmarks/gpu/verdict_summary.py "$OUTDIR/diagnose_fast.json"
echo "== torch fast-loop variants and kernels"
python3 benchmarks/gpu/torch_fast_variants.py --shape mnist 2>&1 | grep -v "USDT\|UserWarning\|_warn_once"
