"""Issue 17's figures from `cnnprof bench` folders: per run the median epoch (epochs 2..N), the
ratios to the same backend's seed and tuned loops, the final validation accuracy, the training
energy per image and cnnprof's verdict, then the issue's checks. Prints markdown.

    python3 benchmarks/gpu/session5_summary.py BENCH_DIR [BENCH_DIR ...]

The verdict is what `cnnprof diagnose RUN --json` prints: {"verdict": {id, claim, step_s, split,
device_busy_pct, ...}, "findings": [...]} (or, from an older cnnprof, a list of findings).
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any

from cnnprof.traces.reader import RunData


def steady(values: list[float]) -> float | None:
    """Median of epochs 2..N (the first pays cuDNN set-up, graph capture or MLX's compile)."""
    tail = values[1:] or values
    return median(tail) if tail else None


def verdict(run_dir: Path) -> tuple[str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "cnnprof.cli", "diagnose", str(run_dir), "--json"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return "diagnose failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1], ""
    data: Any = json.loads(proc.stdout)
    findings = data.get("findings", []) if isinstance(data, dict) else data
    ids = ", ".join(f"{f.get('id')} ({f.get('severity')})" for f in findings)
    v = data.get("verdict") if isinstance(data, dict) else None
    if not isinstance(v, dict):
        return str(v) if v else "(no verdict field in this version)", ids
    # {id, claim, step_s, split, device_busy_pct, window, ...}: the id, claim and the step's figures
    parts = [f"**{v.get('id')}**: {v.get('claim')}"]
    if v.get("step_s") is not None:
        split = " ".join(f"{k} {share:.0%}" for k, share in (v.get("split") or {}).items() if share >= 0.005)
        parts.append(f"step {v['step_s'] * 1e3:.2f} ms ({split})")
    if v.get("device_busy_pct") is not None:
        parts.append(f"GPU busy {v['device_busy_pct']:.0f} %")
    return "; ".join(parts), ids


def row_of(run_dir: Path) -> dict[str, Any]:
    run = RunData(run_dir)
    metrics = run.metrics
    cfg = run.meta.get("config", {})
    train_images = run.meta.get("dataset", {}).get("train") or 0
    energy = {
        column.removeprefix("energy_j."): steady(metrics[column].dropna().tolist())
        for column in metrics.columns
        if column.startswith("energy_j.") and metrics[column].notna().any()
    }
    epoch_s = metrics["epoch_s"].tolist() if "epoch_s" in metrics else []
    return {
        "dir": run_dir,
        "backend": run.meta.get("backend", {}).get("name", cfg.get("backend", "?")),
        "loop": cfg.get("loop", "?"),
        "status": run.meta.get("status"),
        "epochs": len(epoch_s),
        "first_s": epoch_s[0] if epoch_s else None,
        "steady_s": steady(epoch_s),
        "val_acc": float(metrics["val_acc"].iloc[-1]) if "val_acc" in metrics and len(metrics) else None,
        "mj_per_image": {src: j * 1e3 / train_images for src, j in energy.items() if j and train_images},
        "train_images": train_images,
        "notes": cfg.get("loop_notes") or [],
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(bench_dirs: list[str]) -> int:
    run_dirs = sorted(p.parent for d in bench_dirs for p in Path(d).glob("*/*/run.json"))
    if not run_dirs:
        print(f"no runs under {' '.join(bench_dirs)}")
        return 1
    order = {"seed": 0, "tuned": 1, "fast": 2}
    rows = sorted((row_of(d) for d in run_dirs), key=lambda r: (r["backend"], order.get(r["loop"], 3)))
    run_dirs = [r["dir"] for r in rows]
    with ThreadPoolExecutor(max_workers=8) as pool:  # one diagnose process per run, side by side
        for row, (text, ids) in zip(rows, pool.map(verdict, run_dirs), strict=True):
            row["verdict"], row["findings"] = text, ids
    by_key = {(r["backend"], r["loop"]): r for r in rows}

    def ratio(row: dict[str, Any], loop: str) -> float | None:
        base = by_key.get((row["backend"], loop))
        if base is None or not base["steady_s"] or not row["steady_s"]:
            return None
        return base["steady_s"] / row["steady_s"]

    print("| backend | loop | images | epoch 1 s | median epoch s (2..N) | x seed | x tuned | final val acc "
          "| mJ / train image | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        energy = ", ".join(f"{v:.3f} ({src})" for src, v in r["mj_per_image"].items()) or "-"
        val = fmt(r["val_acc"] * 100 if r["val_acc"] is not None else None, ".2f") + " %"
        print(f"| {r['backend']} | {r['loop']} | {r['train_images']:,} | {fmt(r['first_s'], '.2f')} "
              f"| {fmt(r['steady_s'], '.3f')} | {fmt(ratio(r, 'seed'), '.2f')} | {fmt(ratio(r, 'tuned'), '.2f')} "
              f"| {val} | {energy} | {r['verdict']} |")
    print()
    for r in rows:
        print(f"- {r['backend']} {r['loop']} ({r['status']}): findings {r['findings'] or 'none'}")
        for note in r["notes"]:
            print(f"  - note: {note}")
    print()
    print("Checks (issue 17):")
    cuda_fast = by_key.get(("torch_cuda", "fast"))
    if cuda_fast and cuda_fast["steady_s"]:
        x_seed = ratio(cuda_fast, "seed")
        print(f"- torch_cuda fast {cuda_fast['steady_s']:.3f} s/epoch (<= 0.15: "
              f"{'yes' if cuda_fast['steady_s'] <= 0.15 else 'NO'}), {fmt(x_seed, '.2f')}x seed "
              f"(>= 6: {'yes' if x_seed and x_seed >= 6 else 'NO'})")
    else:
        print("- torch_cuda fast: no finished run")
    mlx_fast, mlx_tuned = by_key.get(("mlx_gpu", "fast")), by_key.get(("mlx_gpu", "tuned"))
    if mlx_fast and mlx_tuned and mlx_fast["steady_s"] and mlx_tuned["steady_s"]:
        faster = mlx_fast["steady_s"] < mlx_tuned["steady_s"]
        print(f"- mlx_gpu fast {mlx_fast['steady_s']:.3f} vs tuned {mlx_tuned['steady_s']:.3f} s/epoch "
              f"(faster: {'yes' if faster else 'NO'})")
    else:
        print("- mlx_gpu: fast or tuned not run (mlx not importable here, or MLX=0)")
    for backend in sorted({r["backend"] for r in rows}):
        fast, tuned = by_key.get((backend, "fast")), by_key.get((backend, "tuned"))
        if fast and tuned and fast["val_acc"] is not None and tuned["val_acc"] is not None:
            gap = abs(fast["val_acc"] - tuned["val_acc"]) * 100
            print(f"- {backend} val acc fast - tuned: {gap:.3f} points (within 0.2: {'yes' if gap <= 0.2 else 'NO'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
