#!/usr/bin/env bash
# Usage: NANOGPT=/path/to/nanoGPT bash benchmarks/gpu/nanogpt_sync.sh 2>&1 | tee $OUT/log (from the repo root).
# nanoGPT (karpathy/nanoGPT, unmodified; char-level data prepared from local text) on the H200:
# a per-step loss.item() (--log_interval=1) against one every 1000 steps, side by side without
# cnnprof (whole-process wall time less a 0-iteration run's), then cnnprof's verdict and sync cost.
set -uo pipefail
ls .whl/*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
cd "${NANOGPT:?set NANOGPT to a nanoGPT checkout with data/shakespeare_char prepared}"
A="config/train_shakespeare_char.py --device=cuda --compile=False --eval_iters=5 --eval_interval=100000 --always_save_checkpoint=False"
run() { local t0=$EPOCHREALTIME; python3 train.py $A "$@" > /tmp/ngpt.out 2>&1; local t1=$EPOCHREALTIME; awk "BEGIN{print $t1 - $t0}"; }
for r in 1 2; do
  z=$(run --max_iters=0 --lr_decay_iters=600 --log_interval=1000)
  s=$(run --max_iters=600 --lr_decay_iters=600 --log_interval=1)
  n=$(run --max_iters=600 --lr_decay_iters=600 --log_interval=1000)
  echo "round $r: zero-iter $z s, log every step $s s, log every 1000 $n s"
done
tail -3 /tmp/ngpt.out
python3 -m cnnprof.cli profile --no-report --out /tmp/ngr -- train.py $A --max_iters=600 --lr_decay_iters=600 --log_interval=1 2>&1 | grep -v "^iter\|^step" | tail -60
d=$(ls -d /tmp/ngr/*)
python3 -m cnnprof.cli diagnose --json "$d" > "${OUT:-/tmp}/diag_ngpt.json"
