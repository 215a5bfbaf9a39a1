"""What observation costs: the sync and step hooks per call, and the stack profilers on a loop.

    .venv/bin/python benchmarks/sync_hook_cost.py              # all parts
    .venv/bin/python benchmarks/sync_hook_cost.py hooks        # per-call sync hook cost only
    .venv/bin/python benchmarks/sync_hook_cost.py steps        # per-call step hook cost only
    .venv/bin/python benchmarks/sync_hook_cost.py profilers    # profiler overhead only

Part 1, hooks: the time of one call of each hooked sync point with and without the hooks, on
objects that make the original as cheap as it gets (a CPU scalar tensor, an evaluated mlx array),
so the difference is the hook: re-entrancy guard, two clock reads, the device test, the caller
walk (one frame here) and one list append. Plain and hooked blocks of many calls alternate; the
figure is their median paired difference. The budget is 3 us per call.

Part 2, profilers: a small CPU torch training loop (a small CNN, a DataLoader with default
collate, a per-batch `.item()`) and a Python-heavy one, timed between the observer's start and
stop under each `--profiler` mode, plus the time `stop` takes to write the files. `both` =
cProfile + the signal sampler. Whole-run figures on the H100 are in docs/BENCHMARKS.md.

Measured (2026-11; each figure moves by 10-30 % between runs on these shared machines):

    hooks, added per call (budget 3 us; 7 alternating plain/hooked blocks, median paired difference):
      H100 host, 16-core Xeon, Python 3.12.3, torch 2.11 (2026-11-25):
        Tensor.item 1.29 us, Tensor.__bool__ 1.12 us, Tensor.tolist 1.33 us,
        a CUDA scalar's .item(): 8.51 us plain, 10.81 us hooked, +2.18 us
        (an earlier hand check, all plain calls then all hooked ones, gave +1.9 to +3.9 us:
        order effects, which the alternating blocks remove)
      development VM, 2-core AMD EPYC, Python 3.11.7, torch 2.13 CPU, mlx 0.32.4 CPU (2026-11-25):
        Tensor.item 2.44 us, Tensor.__bool__ 1.61 us, Tensor.tolist 1.74 us,
        mx.eval 1.83 us, array.item 1.74 us (earlier runs: 1.3-2.9 us)

    profilers (interval 1 ms), time added to the workload:
                                        sampler  pyinstrument  cprofile  both
      VM, py3.11, seed-style CNN loop      +1 %       +5 %        +2 %    +10 %   (2026-11-25)
      VM, py3.11, Python-heavy loop        +5 %      +60 %       +66 %    +74 %
    (both = sampler + cProfile) earlier, before the signal sampler (both = pyinstrument + cProfile on 3.12, cProfile + a
    sampling thread on 3.11):
      Xeon, py3.12, seed-style CNN loop      -       +5-10 %      ~0 %   ~0-15 %
      Xeon, py3.12, Python-heavy loop        -     +105-114 %  +72-103 %  +146-198 %
      VM, py3.11, seed-style CNN loop        -      +11-41 %    ~0-5 %    +6-9 %
      VM, py3.11, Python-heavy loop          -     +105-120 %   +69-92 %  +54-107 %
    and for real: `cnnprof run --backend torch_cuda --loop seed` on the H100 (16,384 images,
    3 epochs, median epoch time, 3 A/B pairs each with benchmarks/overhead.py, --telemetry none):
    pyinstrument x1.31, both x1.16, cprofile x1.14 over --profiler none (the seed loop there is
    host-bound: DataLoader collate and a per-batch .item(), so host-side overhead shows in full;
    the pair-to-pair spread was about +-20 %). Writing the files at stop: < 0.05 s for these runs.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnprof.profiler.spans import SpanRecorder  # noqa: E402
from cnnprof.profiler.stacks import StackObserver  # noqa: E402
from cnnprof.profiler.sync import SyncHooks  # noqa: E402

CALLS = 20_000
REPEATS = 7


def _block_ns(fn: Any) -> float:
    """Mean ns per call over one block of CALLS calls."""
    gc.disable()
    t = time.perf_counter_ns()
    for _ in range(CALLS):
        fn()
    dt = time.perf_counter_ns() - t
    gc.enable()
    return dt / CALLS


def hooks_part() -> None:
    import torch

    points: dict[str, Any] = {}
    t = torch.ones(())
    points["Tensor.item"] = t.item
    points["Tensor.__bool__"] = lambda: bool(t)
    points["Tensor.tolist"] = t.tolist
    if torch.cuda.is_available():
        tc = torch.ones((), device="cuda")
        points["Tensor.item (cuda)"] = tc.item
    try:
        import mlx.core as mx

        a = mx.ones(())
        mx.eval(a)
        points["mx.eval"] = lambda: mx.eval(a)
        points["array.item"] = a.item
    except ImportError:
        print("mlx not installed: mlx points skipped")

    # Bound methods were taken before the hooks: re-fetch them through the class while hooked.
    def fresh() -> dict[str, Any]:
        fns = dict(points)
        fns["Tensor.item"] = lambda: t.item()
        fns["Tensor.tolist"] = lambda: t.tolist()
        if "Tensor.item (cuda)" in fns:
            fns["Tensor.item (cuda)"] = lambda: tc.item()
        if "array.item" in fns:
            fns["array.item"] = lambda: a.item()
        return fns

    paired_cost("sync hook cost per call", points, fresh, SyncHooks)


def paired_cost(title: str, points: dict[str, Any], fresh: Any, make_hooks: Any) -> None:
    """Plain and hooked blocks alternate (install, measure, remove, REPEATS times), so drift and
    order effects hit both sides; the figure is the median of the paired differences."""
    rec = SpanRecorder()
    base: dict[str, list[float]] = {name: [] for name in points}
    hooked: dict[str, list[float]] = {name: [] for name in points}
    for _ in range(REPEATS):
        for name, fn in fresh().items():
            base[name].append(_block_ns(fn))
        hooks = make_hooks(rec)
        hooks.install(lazy=False)
        try:
            for name, fn in fresh().items():
                rec.rows.clear()
                hooked[name].append(_block_ns(fn))
        finally:
            hooks.remove()
    print(f"{title} ({CALLS:,} calls a block, {REPEATS} alternating plain/hooked blocks):")
    print(f"  {'point':<22}{'original':>12}{'hooked':>12}{'added':>12}  (medians; added = median paired difference)")
    for name in points:
        added = statistics.median(h - b for h, b in zip(hooked[name], base[name]))
        flag = "" if added < 3000 else "  OVER the 3 us budget"
        print(
            f"  {name:<22}{statistics.median(base[name]) / 1e3:>10.2f}us"
            f"{statistics.median(hooked[name]) / 1e3:>10.2f}us{added / 1e3:>10.2f}us{flag}"
        )


def steps_part() -> None:
    """The step hooks (profiler/steps.py) on the calls a training step makes, each as cheap as it
    gets: a backward of a one-element graph, an SGD step on one parameter, a DataLoader fetch of a
    ready tensor, an MLX value_and_grad call and optimizer update (graph building only)."""
    import torch
    from torch.utils.data import DataLoader

    from cnnprof.profiler.steps import StepHooks

    torch.set_num_threads(1)
    w = torch.ones(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.0)
    loader = DataLoader(torch.zeros(10**7, 1), batch_size=None, shuffle=False)
    state: dict[str, Any] = {}

    def fetch() -> None:
        if "it" not in state:
            state["it"] = iter(loader)
        next(state["it"])

    points: dict[str, Any] = {
        "Tensor.backward": lambda: (w * 2).backward(),
        "optimizer.step": opt.step,
        "DataLoader.__next__": fetch,
    }
    try:
        import mlx.core as mx
        import mlx.nn as nn
        import mlx.optimizers as optim

        model = nn.Linear(1, 1)
        mopt = optim.SGD(learning_rate=0.0)
        x = mx.ones((1, 1))
        grads = nn.value_and_grad(model, lambda m, x: m(x).sum())(model, x)[1]
        points["value_and_grad()"] = lambda: None
        points["Optimizer.update"] = lambda: mopt.update(model, grads)
    except ImportError:
        print("mlx not installed: mlx points skipped")

    def fresh() -> dict[str, Any]:
        # Made while the hooks are (or are not) installed, as a script makes them; a new DataLoader
        # iterator each time, so __next__ goes through the class as patched now.
        fns = dict(points)
        state.pop("it", None)
        if "value_and_grad()" in fns:
            vg = nn.value_and_grad(model, lambda m, x: m(x).sum())
            fns["value_and_grad()"] = lambda: vg(model, x)
        return fns

    paired_cost("step hook cost per call", points, fresh, StepHooks)


def _seed_loop() -> None:
    """The study's loop in miniature: a small CNN, a DataLoader with default collate over a
    TensorDataset (per-sample indexing + torch.stack), a per-batch .item()."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(4096, 1, 28, 28, generator=g), torch.randint(0, 10, (4096,), generator=g))
    model = nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    total = 0.0
    for x, y in DataLoader(data, batch_size=64, shuffle=True, generator=g):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        total += loss.item()


def _python_heavy() -> None:
    """Worst case for a profile hook: ~10^5 tiny builtin calls per 0.1 s between torch steps."""
    import torch
    from torch import nn

    rng = random.Random(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    total = 0.0
    for _ in range(150):
        rows = [[rng.random() * 2 - 1 for _ in range(64)] for _ in range(32)]  # per-sample host work
        rows = [[max(v, 0.0) for v in r] for r in rows]
        x = torch.tensor(rows)
        y = torch.tensor([rng.randrange(10) for _ in range(32)])
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        total += loss.item()


def profilers_part() -> None:
    import torch

    torch.set_num_threads(1)
    modes = ("none", "sampler", "pyinstrument", "cprofile", "both")
    for label, workload in (("seed-style CNN loop", _seed_loop), ("Python-heavy loop", _python_heavy)):
        workload()  # warm up torch (first-use imports, allocator)
        results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(5):
                for mode in modes:
                    session = SimpleNamespace(run_dir=Path(tmp), t0_perf_ns=time.perf_counter_ns())
                    observer = StackObserver(mode, interval_ms=1.0)
                    t = time.perf_counter()
                    observer.start(session)  # type: ignore[arg-type]
                    workload()
                    t_work = time.perf_counter()
                    observer.stop(session)  # type: ignore[arg-type]
                    results[mode].append((t_work - t, time.perf_counter() - t_work))
        base = statistics.median(w for w, _ in results["none"])
        print(f"\nprofiler overhead, {label} ({base:.2f} s unprofiled; median of 5, interval 1 ms):")
        for mode, runs in results.items():
            work = statistics.median(w for w, _ in runs)
            write = statistics.median(s for _, s in runs)
            print(f"  {mode:<13}{work:>7.2f} s  {100 * (work / base - 1):>+6.0f} %   files written in {write:.2f} s")


def main(argv: list[str]) -> None:
    parts = argv or ["hooks", "steps", "profilers"]
    print(f"Python {sys.version.split()[0]} on {sys.platform}")
    if "hooks" in parts:
        hooks_part()
    if "steps" in parts:
        steps_part()
    if "profilers" in parts:
        profilers_part()


if __name__ == "__main__":
    main(sys.argv[1:])
