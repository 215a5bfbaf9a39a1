#!/usr/bin/env bash
# Issue 13 on the GPU machine: what the live panel costs the tuned CUDA loop (median epoch time
# with --live over without, both in a pseudo-terminal, in rotation), then, where tmux is there,
# a capture of the panel on a seed-loop CUDA run for the README (drawn elsewhere:
# `python benchmarks/live_screenshot.py docs/img/live.png --from-ansi live_gpu.ansi`).
# Run from the repo root. Needs: torch with CUDA, pyarrow, rich (no plotly: --no-report).
set -x
OUTDIR=${OUT:-/tmp}
python3 benchmarks/live_cost.py --backend torch_cuda --pairs 5 \
  -- --loop tuned --epochs 6 --single-inference 0 --test-images 512 | tee "$OUTDIR/live_cost.txt"
if command -v tmux >/dev/null 2>&1; then
  python3 benchmarks/live_screenshot.py - --after 6 --save-ansi "$OUTDIR/live_gpu.ansi" \
    -- run --live --backend torch_cuda --loop seed --epochs 4 --single-inference 0 --no-report \
    --out "${RUNS:-/tmp/runs}/live-shot"
fi
