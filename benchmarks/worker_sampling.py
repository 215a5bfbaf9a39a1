"""What sampling the DataLoader workers costs: epoch time with and without it, workers on.

    python benchmarks/worker_sampling.py                     # 2 workers, 6 rounds, 1 ms interval
    python benchmarks/worker_sampling.py --workers 4 --rounds 10 --interval-ms 2

One process alternates epochs with child sampling off and on (profiler/children.py's StartPatch,
as `cnnprof run` / `profile` install it), so process-to-process noise stays out. Each epoch starts
its workers afresh (no persistent_workers), so every "on" epoch pays the whole cost: a sampler in
each worker, its samples written when the worker ends, and (timed apart) the conversion of those
files into the run directory's tables at the end of a run. The dataset's per-sample transform is
pure Python (the case where worker stacks matter). Prints per side the median epoch time, the
ratio, the samples the workers took, and the conversion time per epoch's files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from cnnprof.profiler.children import StartPatch, children_info, convert  # noqa: E402


class Transformed(Dataset):
    def __init__(self, n: int, work: int) -> None:
        self.n, self.work = n, work

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.full((16,), float(i))
        for _ in range(self.work):  # a per-sample transform in Python
            x = x + 0.0
        return x


def epoch(loader: DataLoader) -> float:
    start = time.perf_counter()
    for batch in loader:
        batch.sum()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--work", type=int, default=300, help="Python ops per sample in the transform")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--interval-ms", type=float, default=1.0)
    args = parser.parse_args()
    loader = DataLoader(Transformed(args.samples, args.work), batch_size=args.batch_size, num_workers=args.workers)
    epoch(loader)  # warm-up: imports, first fork
    times: dict[str, list[float]] = {"off": [], "on": []}
    samples, convert_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side in ("off", "on") if r % 2 == 0 else ("on", "off"):
                if side == "off":
                    times["off"].append(epoch(loader))
                    continue
                folder = Path(tmp) / f"run{r}"
                (folder / "processes").mkdir(parents=True)
                patch = StartPatch(str(folder / "processes"), args.interval_ms / 1e3)
                try:
                    times["on"].append(epoch(loader))
                finally:
                    patch.remove()
                samples.append(sum(c["samples"] for c in children_info(folder, 0)))
                start = time.perf_counter()
                convert(folder, 0)
                convert_s.append(time.perf_counter() - start)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"workers={args.workers} samples={args.samples} work={args.work} batch={args.batch_size} "
          f"rounds={args.rounds} interval={args.interval_ms} ms")
    print(f"epoch off  median {off:.3f} s  (all: {', '.join(f'{t:.3f}' for t in times['off'])})")
    print(f"epoch on   median {on:.3f} s  (all: {', '.join(f'{t:.3f}' for t in times['on'])})")
    print(f"ratio on/off {on / off:.3f}; worker samples per epoch median {statistics.median(samples):,.0f}")
    print(f"conversion of an epoch's worker files (first read) median {statistics.median(convert_s) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
