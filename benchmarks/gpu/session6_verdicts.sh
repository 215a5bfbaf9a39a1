#!/usr/bin/env bash
# The verdicts on the GPU machine (H200) for scripts cnnprof did not write (issue: findings on any
# script): a compute-heavy user CNN (expected compute-bound, GPU busy > 90 % in the steady state)
# and the same with a per-step `logits.cpu()` (a sync: cnnprof's estimate of its cost against a
# side-by-side run without it, plain python, alternating rounds). The torch_cuda seed / tuned and
# mlx_gpu verdicts come from session5_fast.sh's bench, run in the same session.
#   bash benchmarks/gpu/session6_verdicts.sh 2>&1 | tee $OUT/verdicts.log
set -uo pipefail
OUTDIR=${OUT:-/tmp/session6-out}
RUNS=${RUNS:-/tmp/runs6}
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site/plotly ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
S=benchmarks/gpu/user_cnn.py

echo "== side by side, plain python: with and without the per-step logits.cpu(), 3 alternating rounds"
for r in 1 2 3; do
  for mode in plain cpu; do
    flag=""; [ $mode = cpu ] && flag=--cpu-logits
    python3 $S --epochs 4 $flag | awk -v m=$mode -v r=$r '{print "round", r, m, $0}'
  done
done | tee "$OUTDIR/ab.txt"

echo "== cnnprof profile: compute-heavy (no sync) and with the per-step sync"
for mode in plain cpu; do
  flag=""; [ $mode = cpu ] && flag=--cpu-logits
  python3 -m cnnprof.cli profile --no-report --out "$RUNS/$mode" -- $S --epochs 4 $flag | tail -3
  python3 -m cnnprof.cli diagnose --json "$RUNS/$mode"/* > "$OUTDIR/diagnose_$mode.json"
  python3 benchmarks/gpu/verdict_summary.py "$OUTDIR/diagnose_$mode.json"
done
