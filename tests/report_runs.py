"""Synthetic run directories for the report and export tests and benchmarks/report_size.py.

`make_run(path, ...)` writes what `cnnprof run` writes (run.json, spans, metrics, inference,
telemetry with power, stack samples + stacks.json, profile.pstats) for a made-up training run whose
phases, hardware readings and call stacks hang together: the GPU is busy and draws power while a
training step runs, the samples sit in the phase the spans say, the sync calls have callers.
Vectorised with numpy so that a 30-epoch, 1.2 M-sample run is written in a few seconds.
"""

from __future__ import annotations

import json
import marshal
from pathlib import Path
from typing import Any

import numpy as np

from cnnprof.traces import schema
from cnnprof.traces.record import Backend, Dataset, Host, Model, RunRecord, Script, Telemetry, write_record
from cnnprof.traces.writer import write_json, write_table

HOSTILE_FUNCTION = "<img src=x onerror=alert(1)>"
HOSTILE_FILE = '</script><script>alert("file")</script>.py'

MS = 1_000_000
S = 1_000_000_000

# step part -> share of a training step
STEP_PARTS = (
    ("data", "collate", 0.12),
    ("forward", "forward", 0.30),
    ("backward", "backward", 0.38),
    ("optimizer", "optimizer", 0.15),
    ("sync", "Tensor.item", 0.05),
)

SOURCE_REASONS = {
    "powermetrics": "unavailable: sudo -n powermetrics failed: a password is required",
    "nvml": "unavailable: nvidia-ml-py is not installed",
    "procfs": "unavailable: per-core CPU times unreadable",
    "rapl": "unavailable: RAPL energy_uj is readable by root only",
}


class _Frames:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.index: dict[tuple[str, str, int], int] = {}

    def __call__(
        self, function: str, file: str, line: int, first_line: int | None = None, library: bool = False
    ) -> int:
        key = (function, file, line)
        if key not in self.index:
            self.index[key] = len(self.frames)
            self.frames.append(
                {
                    "function": function,
                    "file": file,
                    "line": line,
                    "first_line": first_line if first_line is not None else line,
                    "library": library,
                }
            )
        return self.index[key]


def _stack_sets(hostile: bool, variety: int) -> tuple[list[dict[str, Any]], list[list[int]], dict[str, list[int]]]:
    """Frames, stacks, and the stack ids each phase's samples draw from."""
    f = _Frames()
    root = [
        f("<module>", "cnnprof/__main__.py", 3, 1, True),
        f("main", "cnnprof/cli.py", 254, 240, True),
        f("cmd_run", "cnnprof/cli.py", 208, 180, True),
        f("execute_run", "cnnprof/train.py", 94, 70, True),
    ]
    loop = "cnnprof/models/loops/common.py"
    torch_loop = "cnnprof/models/loops/torch_loop.py"
    sp = "/venv/lib/python3.11/site-packages/torch/"

    def forward_tails(prefix: list[int]) -> list[list[int]]:
        call = prefix + [
            f("Module._call_impl", sp + "nn/modules/module.py", 1750, 1740, True),
            f("Net.forward", "cnnprof/models/cnn_torch.py", 40, 30),
        ]
        tails = []
        for layer, (mod, leaf) in enumerate(
            [
                ("Conv2d", "conv2d"),
                ("ReLU", "relu"),
                ("MaxPool2d", "max_pool2d"),
                ("Linear", "linear"),
                ("Dropout", "dropout"),
                ("LogSoftmax", "log_softmax"),
            ]
        ):
            mid = call + [
                f("Module._call_impl", sp + "nn/modules/module.py", 1750, 1740, True),
                f(f"{mod}.forward", sp + f"nn/modules/{mod.lower()}.py", 100 + layer, 90, True),
            ]
            for v in range(variety):
                tails.append(
                    mid + [f(f"{leaf}", "<built-in>", 0, 0, True)]
                    if v == 0
                    else mid
                    + [
                        f(f"_{leaf}_impl", sp + "nn/functional.py", 2000 + v, 1990 + layer, True),
                        f(leaf, "<built-in>", 0, 0, True),
                    ]
                )
        if hostile:
            tails.append(call + [f(HOSTILE_FUNCTION, HOSTILE_FILE, 7, 5)])
        return tails

    train = root + [f("run_training", loop, 122, 104), f("TorchTrainer.train_epoch", torch_loop, 80, 60)]
    sets: dict[str, list[list[int]]] = {}
    collate = train + [
        f("DataLoader.__next__", sp + "utils/data/dataloader.py", 733, 720, True),
        f("_next_data", sp + "utils/data/dataloader.py", 789, 780, True),
        f("fetch", sp + "utils/data/_utils/fetch.py", 55, 50, True),
    ]
    sets["data"] = [
        collate
        + [
            f("default_collate", sp + "utils/data/_utils/collate.py", 398 + v, 390, True),
            f("stack", "<built-in>", 0, 0, True),
        ]
        for v in range(variety)
    ]
    sets["data"] += [collate + [f("TensorDataset.__getitem__", sp + "utils/data/dataset.py", 211, 210, True)]]
    sets["forward"] = forward_tails(train[:-1] + [f("TorchTrainer.train_epoch", torch_loop, 84, 60)])
    bw = train[:-1] + [
        f("TorchTrainer.train_epoch", torch_loop, 86, 60),
        f("Tensor.backward", sp + "_tensor.py", 648, 600, True),
        f("backward", sp + "autograd/__init__.py", 353, 300, True),
        f("_engine_run_backward", sp + "autograd/graph.py", 824, 810, True),
    ]
    sets["backward"] = [bw + [f("run_backward", "<built-in>", 0, 0, True)]] + [
        bw + [f(f"Function{v}.apply", sp + "autograd/function.py", 300 + v, 290, True)] for v in range(variety)
    ]
    opt = train[:-1] + [
        f("TorchTrainer.train_epoch", torch_loop, 88, 60),
        f("Adam.step", sp + "optim/adam.py", 240, 200, True),
        f("adam", sp + "optim/adam.py", 900, 880, True),
        f("_single_tensor_adam", sp + "optim/adam.py", 400, 350, True),
    ]
    sets["optimizer"] = [
        opt + [f(op, "<built-in>", 0, 0, True)] for op in ("mul_", "add_", "addcdiv_", "sqrt", "lerp_")
    ]
    sets["sync"] = [
        train[:-1] + [f("TorchTrainer.train_epoch", torch_loop, 91, 60), f("Tensor.item", "<built-in>", 0, 0, True)]
    ]
    val = root + [f("run_training", loop, 127, 104), f("TorchTrainer.validate", torch_loop, 110, 100)]
    sets["validation"] = forward_tails(val) + [val + [f("Tensor.item", "<built-in>", 0, 0, True)]]
    test = root + [f("run_training", loop, 150, 104), f("TorchTrainer.test_batch", torch_loop, 130, 125)]
    sets["test"] = forward_tails(test)
    single = root + [f("run_training", loop, 163, 104), f("TorchTrainer.predict_one", torch_loop, 140, 135)]
    sets["single"] = forward_tails(single)
    sets["idle"] = [
        root
        + [
            f("prepare_run", "cnnprof/train.py", 52, 40, True),
            f("load_dataset", "cnnprof/models/data.py", 200, 180, True),
        ]
    ]

    stacks: list[list[int]] = []
    ids: dict[str, list[int]] = {}
    for phase, group in sets.items():
        ids[phase] = []
        for stack in group:
            ids[phase].append(len(stacks))
            stacks.append(stack)
    return f.frames, stacks, ids


def _spans(
    epochs: int,
    batches: int,
    val_batches: int,
    test_batches: int,
    single: int,
    batch_ns: int,
    rng: np.random.Generator,
    sync_share: float = 0.05,
    device: str = "gpu",
) -> dict[str, list[Any]]:
    parts = [(k, n, share * (1 - sync_share) / 0.95) for k, n, share in STEP_PARTS[:-1]]
    parts.append(("sync", "Tensor.item", sync_share))
    rows: list[tuple[str, str, int, int, int | None, int | None, str | None]] = []
    t = 500 * MS

    def add(
        kind: str, name: str, start: int, end: int, epoch: int | None, batch: int | None, caller: str | None = None
    ) -> None:
        rows.append((kind, name, start, end, epoch, batch, caller))

    for epoch in range(1, epochs + 1):
        e0 = t
        t0 = t
        for b in range(batches):
            b0 = t
            dur = int(batch_ns * (3.0 if epoch == 1 and b == 0 else 1.0) * rng.uniform(0.9, 1.1))
            for kind, name, share in parts:
                d = int(dur * share)
                add(kind, name, t, t + d, epoch, b, "cnnprof/models/loops/torch_loop.py:91" if kind == "sync" else None)
                t += d
            add("batch", "train", b0, t, epoch, b)
            t += 20_000
        add("train", "train", t0, t, epoch, None)
        v0 = t
        for b in range(val_batches):
            b0 = t
            d = int(batch_ns * 0.3)
            add("forward", "forward", t, t + d, epoch, b)
            t += d
            add("sync", "Tensor.item", t, t + d // 10, epoch, b, "cnnprof/models/loops/torch_loop.py:112")
            t += d // 10
            add("batch", "val", b0, t, epoch, b)
        add("validation", "validation", v0, t, epoch, None)
        add("epoch", f"epoch {epoch}", e0, t, epoch, None)
        t += 5 * MS
    t0 = t
    for b in range(test_batches):
        d = int(batch_ns * 0.3)
        add("batch", "test", t, t + d, None, b)
        t += d
    add("test", "test", t0, t, None, None)
    t0 = t
    for i in range(single):
        d = int(rng.uniform(0.8, 1.6) * MS)
        add("single", "single", t, t + d, None, i)
        t += d + 50_000
    if single:
        add("single_inference", "single_inference", t0, t, None, None)
    rows.sort(key=lambda r: r[2])
    return {
        "kind": [r[0] for r in rows],
        "name": [r[1] for r in rows],
        "start_ns": [r[2] for r in rows],
        "end_ns": [r[3] for r in rows],
        "epoch": [r[4] for r in rows],
        "batch": [r[5] for r in rows],
        "caller": [r[6] for r in rows],
        # As the sync hooks write them: the device each sync waited on.
        "attrs": [json.dumps({"device": device}) if r[0] == "sync" else None for r in rows],
    }


def _busy(t: np.ndarray, spans: dict[str, list[Any]], kinds: tuple[str, ...]) -> np.ndarray:
    """1.0 where t lies inside a span of one of `kinds`."""
    kind = np.asarray(spans["kind"])
    sel = np.isin(kind, kinds)
    s = np.asarray(spans["start_ns"])[sel]
    e = np.asarray(spans["end_ns"])[sel]
    order = np.argsort(s)
    s, e = s[order], e[order]
    i = np.searchsorted(s, t, side="right") - 1
    return ((i >= 0) & (t < e[np.maximum(i, 0)])).astype(float)


def _telemetry(
    sources: tuple[str, ...],
    end_ns: int,
    interval_ms: int,
    cores: int,
    spans: dict[str, list[Any]],
    rng: np.random.Generator,
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    cols: dict[str, list[np.ndarray]] = {"t_ns": [], "source": [], "metric": [], "value": []}
    described: dict[str, Any] = {}
    t = np.arange(interval_ms * MS, end_ns, interval_ms * MS, dtype=np.int64)
    busy = _busy(t, spans, ("train", "validation", "test", "single_inference"))
    n = len(t)

    def put(source: str, metric: str, values: np.ndarray, unit: str, times: np.ndarray | None = None) -> None:
        tt = t if times is None else times
        cols["t_ns"].append(tt)
        cols["source"].append(np.full(len(tt), source, dtype=object))
        cols["metric"].append(np.full(len(tt), metric, dtype=object))
        cols["value"].append(np.asarray(values, dtype=float))
        # run.json keys them `<source>.<metric>`, as the sampler does.
        described.setdefault(f"{source}.{metric}", {"unit": unit, "description": metric, "source": source})

    noise = lambda scale: rng.normal(0, scale, n)  # noqa: E731
    if "powermetrics" in sources:
        put("powermetrics", "window_ms", np.full(n, float(interval_ms)), "ms")
        put("powermetrics", "gpu_freq_mhz", 389 + busy * 1009 + noise(5), "MHz")
        put("powermetrics", "gpu_active_pct", np.clip(3 + busy * 88 + noise(3), 0, 100), "%")
        gpu, cpu = 0.05 + busy * 8.5 + noise(0.3), 0.8 + busy * 3.2 + noise(0.2)
        put("powermetrics", "gpu_power_w", np.clip(gpu, 0, None), "W")
        put("powermetrics", "cpu_power_w", np.clip(cpu, 0, None), "W")
        put("powermetrics", "ane_power_w", np.zeros(n), "W")
        put("powermetrics", "combined_power_w", np.clip(gpu + cpu, 0, None), "W")
        for k, base in (("e", 40), ("p", 25)):
            put("powermetrics", f"{k}_cluster_active_pct", np.clip(base + busy * 30 + noise(4), 0, 100), "%")
            put("powermetrics", f"{k}_cluster_freq_mhz", 900 + busy * 1500 + noise(20), "MHz")
        put("powermetrics", "thermal_pressure_level", np.zeros(n), "level")
        for c in range(cores):
            put("powermetrics", f"core.{c}.active_pct", np.clip(20 + busy * 50 + noise(10), 0, 100), "%")
    if "nvml" in sources:
        put("nvml", "sm_clock_mhz", 345 + busy * 1635 + noise(10), "MHz")
        put("nvml", "mem_clock_mhz", np.full(n, 2619.0), "MHz")
        put("nvml", "gpu_util_pct", np.clip(busy * 93 + noise(2), 0, 100), "%")
        put("nvml", "mem_util_pct", np.clip(busy * 40 + noise(2), 0, 100), "%")
        tb = np.arange(20 * MS, end_ns, 20 * MS, dtype=np.int64)
        bb = _busy(tb, spans, ("train", "validation", "test", "single_inference"))
        put("nvml", "power_w", 70 + bb * 280 + rng.normal(0, 5, len(tb)), "W", tb)
        put("nvml", "power_avg_w", 70 + busy * 270, "W")
        put("nvml", "temp_c", 35 + np.cumsum(busy) / max(n, 1) * 30, "degC")
        put("nvml", "mem_used_mb", 600 + busy * 2400, "MiB")
        reasons = np.where(busy > 0, 0.0, 1.0)
        reasons[n // 2 : n // 2 + 3] = 0x4 | 0x20  # a power cap and thermal slowdown mid-run
        put("nvml", "clock_event_reasons", reasons, "bitmask")
        te = t[:: max(1, 1000 // interval_ms)]
        put("nvml", "energy_j", np.linspace(0, 1, len(te)) * 100.0, "J", te)
    if "procfs" in sources:
        per = []
        for c in range(cores):
            v = np.clip(10 + busy * (80 if c % 2 == 0 else 30) + noise(8), 0, 100)
            per.append(v)
            put("procfs", f"cpu.{c}.busy_pct", v, "%")
        put("procfs", "cpu_busy_pct", np.mean(per, axis=0), "%")
        put("procfs", "proc_cpu_pct", np.clip(100 + busy * 250 + noise(10), 0, None), "%")
        put("procfs", "proc_rss_mb", 900 + np.cumsum(busy) / max(n, 1) * 300, "MiB")
        put("procfs", "proc_preemptions_per_s", np.clip(40 + busy * 300 + noise(20), 0, None), "1/s")
    if "rapl" in sources:
        put("rapl", "window_ms", np.full(n, float(interval_ms)), "ms")
        put("rapl", "package-0.power_w", 30 + busy * 60 + noise(2), "W")
        put("rapl", "dram.power_w", 5 + busy * 4 + noise(0.3), "W")
    if not cols["t_ns"]:
        return {"t_ns": [], "source": [], "metric": [], "value": []}, described
    return {k: np.concatenate(v) for k, v in cols.items()}, described


def _samples(
    spans: dict[str, list[Any]], end_ns: int, sample_ms: float, ids: dict[str, list[int]], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    step = int(sample_ms * MS)
    t = np.arange(0, end_ns - step, step, dtype=np.int64)
    phase = np.full(len(t), "idle", dtype=object)
    for kinds, label in (
        (("validation",), "validation"),
        (("test",), "test"),
        (("single_inference",), "single"),
        (("data",), "data"),
        (("forward",), "forward"),
        (("backward",), "backward"),
        (("optimizer",), "optimizer"),
        (("sync",), "sync"),
    ):
        phase[_busy(t, spans, kinds) > 0] = label
    stack = np.zeros(len(t), dtype=np.int32)
    chunk = np.arange(len(t)) // 4
    for label, cands in ids.items():
        mask = phase == label
        if not mask.any():
            continue
        pick = rng.integers(0, len(cands), size=chunk[-1] + 1)
        stack[mask] = np.asarray(cands, dtype=np.int32)[pick[chunk[mask]]]
    dt = np.full(len(t), step, dtype=np.int64) + rng.integers(0, 40_000, len(t))
    starts = np.concatenate(([0], np.cumsum(dt[:-1])))
    keep = starts + dt < end_ns
    return {"t_ns": starts[keep], "dt_ns": dt[keep], "stack_id": stack[keep]}


def _pstats(path: Path, hostile: bool) -> None:
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, dict[Any, Any]]] = {
        ("cnnprof/models/loops/common.py", 104, "run_training"): (1, 1, 0.01, 80.0, {}),
        ("cnnprof/models/loops/torch_loop.py", 60, "train_epoch"): (2, 2, 0.5, 60.0, {}),
        ("~", 0, "<method 'item' of 'torch._C.TensorBase' objects>"): (15585, 15585, 41.4, 41.4, {}),
        ("~", 0, "<built-in method torch.stack>"): (1200, 1200, 6.5, 6.5, {}),
        ("/venv/torch/utils/data/_utils/collate.py", 390, "default_collate"): (1200, 1200, 0.8, 7.5, {}),
        ("/venv/torch/optim/adam.py", 200, "step"): (1200, 1200, 1.1, 5.2, {}),
    }
    if hostile:
        stats[(HOSTILE_FILE, 5, HOSTILE_FUNCTION)] = (3, 2, 0.25, 0.5, {})
    with open(path, "wb") as fh:
        marshal.dump(stats, fh)


def make_run(
    path: Path,
    *,
    epochs: int = 2,
    batches: int = 6,
    val_batches: int = 2,
    test_batches: int = 3,
    single: int = 20,
    batch_ms: float = 40.0,
    telemetry: tuple[str, ...] = ("powermetrics", "procfs"),
    interval_ms: int = 100,
    cores: int = 8,
    samples: bool = True,
    sample_ms: float = 1.0,
    variety: int = 3,
    cprofile: bool = True,
    hostile: bool = False,
    status: str = "complete",
    backend: str = "mlx_gpu",
    seed: int = 0,
    sync_share: float = 0.05,
    script: Script | None = None,
) -> Path:
    """Writes one synthetic run directory at `path` (created) and returns it; with `script`, the
    run of a profiled script (no dataset, model, summary; backend detected)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    device = {"mlx_gpu": "gpu", "torch_cuda": "cuda", "torch_mps": "mps"}.get(backend, "cpu")
    spans = _spans(epochs, batches, val_batches, test_batches, single, int(batch_ms * MS), rng, sync_share, device)
    end_ns = max(spans["end_ns"]) + 200 * MS
    write_table(path / schema.SPANS, spans, schema.SPANS_SCHEMA)

    tel, described = _telemetry(telemetry, end_ns, interval_ms, cores, spans, rng)
    write_table(path / schema.TELEMETRY, tel, schema.TELEMETRY_SCHEMA)

    import pandas as pd

    from cnnprof.traces.energy import power_series, series_energy

    series = power_series(pd.DataFrame(tel)) if len(tel["t_ns"]) else {}
    kinds = np.asarray(spans["kind"])
    train_spans = [(s, e) for k, s, e in zip(kinds, spans["start_ns"], spans["end_ns"]) if k == "train"]
    n_train = batches * 512
    metrics: dict[str, list[Any]] = {
        k: []
        for k in (
            "epoch",
            "train_loss",
            "train_acc",
            "val_loss",
            "val_acc",
            "epoch_s",
            "images_per_s",
            "peak_memory_mb",
        )
    }
    for key in series:
        metrics[f"energy_j.{key}"] = []
    for i, (s, e) in enumerate(train_spans, start=1):
        secs = (e - s) / S
        metrics["epoch"].append(i)
        rate = 1.0 + 0.15 * (seed % 4)  # runs learn at different speeds
        metrics["train_loss"].append(2.3 / (1 + 0.3 * rate * i))
        metrics["train_acc"].append(min(0.99, 0.3 + 0.05 * rate * i))
        metrics["val_loss"].append(2.3 / (1 + 0.28 * rate * i))
        metrics["val_acc"].append(min(0.99, 0.32 + 0.048 * rate * i))
        metrics["epoch_s"].append(secs)
        metrics["images_per_s"].append(n_train / secs)
        metrics["peak_memory_mb"].append(1500.0 + 10 * i)
        for key, ser in series.items():
            metrics[f"energy_j.{key}"].append(series_energy(ser, s, e))
    write_table(path / schema.METRICS, metrics, schema.METRICS_SCHEMA)

    inf: dict[str, list[Any]] = {"kind": [], "index": [], "n_images": [], "seconds": [], "correct": []}
    for k, name, s, e, b in zip(kinds, spans["name"], spans["start_ns"], spans["end_ns"], spans["batch"]):
        if k == "batch" and name == "test":
            inf["kind"].append("batched")
            inf["index"].append(b)
            inf["n_images"].append(512)  # noqa: E702
            inf["seconds"].append((e - s) / S)
            inf["correct"].append(int(512 * 0.9))  # noqa: E702
        elif k == "single":
            inf["kind"].append("single")
            inf["index"].append(b)
            inf["n_images"].append(1)  # noqa: E702
            inf["seconds"].append((e - s) / S)
            inf["correct"].append(int(b % 10 != 0))  # noqa: E702
    write_table(path / schema.INFERENCE, inf, schema.INFERENCE_SCHEMA)

    frames, stacks, ids = _stack_sets(hostile, variety)
    if samples:
        write_table(path / schema.SAMPLES, _samples(spans, end_ns, sample_ms, ids, rng), schema.SAMPLES_SCHEMA)
        write_json(path / schema.STACKS, {"frames": frames, "stacks": stacks})
    if cprofile:
        _pstats(path / schema.PSTATS, hostile)

    from cnnprof.traces.summary import summarize

    metric_rows = [dict(zip(metrics, vals)) for vals in zip(*metrics.values())]
    inf_rows = [dict(zip(inf, vals)) for vals in zip(*inf.values())]
    argv = ["cnnprof", "run", "--backend", backend, "--epochs", str(epochs)]
    if hostile:
        argv.append("--note=<b>bold</b><script>alert('argv')</script>")
    record = RunRecord(
        t0_perf_ns=123_456_789_000,
        kind="train" if script is None else "script",
        status=status,
        error=None if status == "complete" else "RuntimeError: <script>alert('error')</script> device lost",
        cnnprof_version="0.1.0",
        argv=argv if script is None else ["cnnprof", "profile", "--", script.path, *script.argv],
        t0_unix_ns=1_700_000_000_000_000_000,
        started="2024-11-14T22:13:20",
        duration_ns=end_ns,
        host=Host(
            os="Darwin 23.4",
            machine="arm64",
            cpu_model="Apple M2",
            logical_cpus=cores,
            p_cores=4,
            e_cores=4,
            ram_gb=16.0,
            python="3.11.7",
        ),
        config=(
            {
                "backend": backend,
                "dataset": "synthetic",
                "epochs": epochs,
                "batch_size": 512,
                "loop": "seed",
                "sync_policy": "batch",
                "single_inference": single,
            }
            if script is None
            else {"profiler": "both", "telemetry": "auto"}
        ),
        script=script,
        backend=Backend(
            name=backend,
            framework="mlx" if backend.startswith("mlx") else "torch",
            framework_version="0.20.0",
            device="gpu",
            device_name="Apple M2 GPU",
            detected=script is not None,
        ),
        dataset=Dataset(
            name="synthetic",
            train=n_train,
            validation=val_batches * 512,
            test=test_batches * 512,
            shape=[1, 28, 28],
            classes=10,
        )
        if script is None
        else None,
        model=Model(name="seed CNN", parameters=659855) if script is None else None,
        telemetry=Telemetry(
            sources={s: ("ok" if s in telemetry else reason) for s, reason in SOURCE_REASONS.items()},
            metrics=described,
            interval_ms=interval_ms,
        ),
        profiler={
            "mode": "both" if cprofile and samples else ("cprofile" if cprofile else "pyinstrument"),
            "interval_ms": sample_ms,
            "timeline": "pyinstrument" if samples else None,
        },
        summary=summarize(metric_rows, inf_rows) if script is None else {},
    )
    write_record(path, record)
    return path


WORKER_FILE = "/home/user/project/augment.py"  # the made-up user code the children run


def add_children(
    run_dir: Path, roles: tuple[str, ...] = ("dataloader worker 0", "dataloader worker 1"), cpu_rows: bool = True
) -> list[int]:
    """Gives a run made by `make_run` child processes, as profiler/children.py leaves them: each
    child's samples file (its stacks as sampler identifiers, its samples' end times) turned into
    processes/<pid>/ by the real conversion, and run.json's "processes" section; with `cpu_rows`,
    procfs's CPU rows of each. Each child runs `transform` (under `__getitem__`) for 3 ms, then
    waits 1 ms for its next index, over the run's middle half. Returns the pids."""
    from cnnprof.profiler.children import children_info, convert

    record = json.loads((run_dir / "run.json").read_text())
    t0, duration = record["t0_perf_ns"], record["duration_ns"]
    loop = "_worker_loop\x00/usr/lib/python3/site-packages/torch/utils/data/_utils/worker.py\x00200\x01l300"
    getitem = f"__getitem__\x00{WORKER_FILE}\x0010\x01l12"
    work = [loop, getitem, f"transform\x00{WORKER_FILE}\x0020\x01l25"]
    wait = [loop, "get\x00/usr/lib/python3.11/multiprocessing/queues.py\x0090\x01l103"]
    (run_dir / schema.PROCESSES).mkdir(exist_ok=True)
    pids = []
    for i, role in enumerate(roles):
        pid = 40_000 + i
        start = t0 + duration // 4
        samples, end = [], start
        while end < t0 + 3 * duration // 4:
            for sid, ms in ((0, 3), (1, 1)):
                end += ms * MS
                samples.append([sid, end])
        doc = {
            "pid": pid, "ppid": record.get("pid") or 1, "role": role, "target": "_worker_loop",
            "start_method": "fork", "start_ns": start, "end_ns": end, "cpu_s": 0.75 * (end - start) / S,
            "interval_s": 0.001, "sampler_self_s": 0.0, "note": "", "stacks": [work, wait], "samples": samples,
        }  # fmt: skip
        (run_dir / schema.PROCESSES / f"{pid}.json").write_text(json.dumps(doc))
        pids.append(pid)
    children = children_info(run_dir, t0)  # as the run's end lists them; the first reader converts
    convert(run_dir, t0)
    record["processes"] = {"children": children, "main_pid": 4242, "threads": "main thread only"}
    (run_dir / "run.json").write_text(json.dumps(record))
    if cpu_rows:  # procfs's per-child CPU, 75 % of one core every 100 ms of their lives
        import pyarrow.parquet as pq

        tel = pq.read_table(run_dir / schema.TELEMETRY).to_pydict()
        for pid in pids:
            for t in range(duration // 4 + 100 * MS, 3 * duration // 4, 100 * MS):
                row = (t, "procfs", f"proc.{pid}.cpu_pct", 75.0)
                for column, value in zip(("t_ns", "source", "metric", "value"), row, strict=True):
                    tel[column].append(value)
        write_table(run_dir / schema.TELEMETRY, tel, schema.TELEMETRY_SCHEMA)
    return pids
