"""The diagnosis rules on constructed run directories: each must fire where it should and stay
quiet where it should not. No torch, no mlx: the rules read only run directories."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cnnprof.reports.diagnosis import diagnose, findings_json, findings_table
from cnnprof.reports.findings import Finding
from cnnprof.traces import schema
from cnnprof.traces.reader import RunData
from cnnprof.traces.writer import write_json, write_table

MS = 1_000_000
S = 1_000_000_000

BACKENDS = {
    "torch_cuda": ("torch", "cuda"),
    "torch_cpu": ("torch", "cpu"),
    "torch_mps": ("torch", "mps"),
    "mlx_gpu": ("mlx", "gpu"),
    "mlx_cpu": ("mlx", "cpu"),
}

USER = "/home/u/train.py"


class Run:
    """Builds a run directory: spans, telemetry, samples, then `.load()`."""

    def __init__(self, tmp_path: Path, backend: str = "torch_cuda", **config: Any) -> None:
        self.dir = tmp_path / f"run-{backend}"
        self.dir.mkdir()
        framework, device = BACKENDS[backend]
        self.meta = {
            "schema_version": schema.SCHEMA_VERSION,
            "kind": "train",
            "status": "complete",
            "t0_perf_ns": 0,
            "backend": {"name": backend, "framework": framework, "device": device},
            "config": {"loop": "seed", "sync": "batch", "batch_size": 512, **config},
        }
        self.spans: list[dict[str, Any]] = []
        self.telemetry: list[tuple[int, str, str, float]] = []
        self.frames: list[dict[str, Any]] = []
        self.stacks: list[list[int]] = []
        self.samples: list[tuple[int, int, int]] = []

    def span(self, kind: str, name: str, start: int, end: int, caller: str | None = None, **attrs: Any) -> Run:
        self.spans.append(
            {
                "kind": kind,
                "name": name,
                "start_ns": start,
                "end_ns": end,
                "caller": caller,
                "attrs": json.dumps(attrs) if attrs else None,
            }
        )
        return self

    def epochs(self, n: int, seconds: float, batches: int = 0, batch_s: float | None = None) -> Run:
        """n back-to-back epochs, each one train phase of `batches` equal train batches."""
        t = 0
        for e in range(n):
            length = int(seconds * S)
            self.span("epoch", f"epoch {e}", t, t + length)
            self.span("train", "train", t, t + length)
            if batches:
                step = int((batch_s or seconds / batches) * S)
                for b in range(batches):
                    self.span("batch", "train", t + b * step, t + (b + 1) * step)
            t += length
        return self

    def tel(self, metric: str, values: list[tuple[int, float]], source: str = "nvml") -> Run:
        self.telemetry += [(t, source, metric, v) for t, v in values]
        return self

    def frame(self, function: str, file: str, line: int, library: bool = False, first_line: int | None = None) -> int:
        self.frames.append(
            {"function": function, "file": file, "line": line, "first_line": first_line or line, "library": library}
        )
        return len(self.frames) - 1

    def sample(self, stack: list[int], t: int, dt: int) -> Run:
        if stack not in self.stacks:
            self.stacks.append(stack)
        self.samples.append((t, dt, self.stacks.index(stack)))
        return self

    def load(self) -> RunData:
        end = max([s["end_ns"] for s in self.spans] + [t + dt for t, dt, _ in self.samples] + [1])
        self.meta["duration_ns"] = end
        write_json(self.dir / schema.RUN_JSON, self.meta)
        cols = {k: [s[k] for s in self.spans] for k in ("kind", "name", "start_ns", "end_ns", "caller", "attrs")}
        write_table(self.dir / schema.SPANS, cols, schema.SPANS_SCHEMA)
        if self.telemetry:
            t, src, metric, value = zip(*self.telemetry, strict=True)
            write_table(
                self.dir / schema.TELEMETRY,
                {"t_ns": list(t), "source": list(src), "metric": list(metric), "value": list(value)},
                schema.TELEMETRY_SCHEMA,
            )
        if self.samples:
            t, dt, sid = zip(*self.samples, strict=True)
            write_table(
                self.dir / schema.SAMPLES,
                {"t_ns": list(t), "dt_ns": list(dt), "stack_id": list(sid)},
                schema.SAMPLES_SCHEMA,
            )
            write_json(self.dir / schema.STACKS, {"frames": self.frames, "stacks": self.stacks})
        return RunData(self.dir)


def by_id(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.id == rule]


def syncs_every(run: Run, period_ms: float, sync_ms: float, total_s: float, device: str, line: int = 42) -> Run:
    """A sync of `sync_ms` every `period_ms`, from the run's start."""
    t = 0
    while t + int(sync_ms * MS) <= int(total_s * S):
        run.span("sync", "Tensor.item", t, t + int(sync_ms * MS), caller=f"{USER}:{line}", device=device)
        t += int(period_ms * MS)
    return run


def util(total_s: float, busy: float, idle: float | None = None, period_ms: int = 10, syncs: Run | None = None) -> list:
    """GPU utilisation readings every period: `idle` while a sync span is open (if given), else `busy`."""
    spans = [(s["start_ns"], s["end_ns"]) for s in (syncs.spans if syncs else []) if s["kind"] == "sync"]
    out = []
    for i in range(1, int(total_s * 1000 / period_ms) + 1):
        t = i * period_ms * MS
        in_sync = any(a <= t - period_ms * MS // 2 < b for a, b in spans)
        out.append((t, idle if (idle is not None and in_sync) else busy))
    return out


# -- sync-bound ------------------------------------------------------------------------------------


def test_sync_bound_fires_on_cuda_and_names_the_call_site(tmp_path: Path) -> None:
    run = syncs_every(Run(tmp_path).epochs(1, 10.0), period_ms=100, sync_ms=40, total_s=10, device="cuda")
    run.span("sync", "Tensor.item", 9_950 * MS, 9_951 * MS, caller=f"{USER}:99", device="cuda")
    (f,) = by_id(diagnose(run.load()), "sync-bound")
    assert f.severity == "medium"  # 40 %: above the line, below "high"
    assert "40%" in f.claim
    assert "can't be told" in f.claim  # no GPU telemetry
    assert f.evidence[1] == "split: unknown"
    assert any("Tensor.item: 101 calls" in e for e in f.evidence)
    top = f.call_sites[0]
    assert (top.file, top.line, top.count) == (USER, 42, 100)
    assert top.seconds == pytest.approx(4.0, rel=1e-6)
    assert (f.call_sites[1].file, f.call_sites[1].line) == (USER, 99)


def test_sync_bound_quiet_when_syncs_are_a_small_share(tmp_path: Path) -> None:
    """A GPU that keeps up (the H100 on the seed loop): no sync-bound, but the per-step sync line
    is named as info, with its count."""
    run = syncs_every(Run(tmp_path).epochs(1, 10.0), period_ms=50, sync_ms=2, total_s=10, device="cuda")
    findings = diagnose(run.load())
    assert by_id(findings, "sync-bound") == []
    (info,) = by_id(findings, "sync-sites")
    assert info.severity == "info"
    assert "200 blocking-sync calls (Tensor.item x200) on cuda cost little here" in info.claim
    assert "below the 20%" in info.evidence[0]
    assert (info.call_sites[0].file, info.call_sites[0].line, info.call_sites[0].count) == (USER, 42, 200)


def test_a_few_cheap_gpu_syncs_are_not_named(tmp_path: Path) -> None:
    # the tuned loop: loss and accuracy read once per epoch
    run = syncs_every(Run(tmp_path).epochs(1, 10.0), period_ms=1000, sync_ms=2, total_s=10, device="cuda")
    assert [f.id for f in diagnose(run.load()) if f.id.startswith("sync")] == []


@pytest.mark.parametrize("backend", ["torch_cpu", "mlx_cpu"])
def test_syncs_on_the_cpu_device_cost_nothing(tmp_path: Path, backend: str) -> None:
    # 10,000 .item() calls, half the wall time: still no sync-bound on a CPU device
    run = Run(tmp_path, backend).epochs(1, 10.0)
    syncs_every(run, period_ms=1, sync_ms=0.5, total_s=10, device="cpu")
    findings = diagnose(run.load())
    assert by_id(findings, "sync-bound") == []
    (info,) = by_id(findings, "sync-sites")
    assert info.severity == "info"
    assert "cost nothing" in info.claim
    assert (info.call_sites[0].file, info.call_sites[0].line, info.call_sites[0].count) == (USER, 42, 10_000)


def test_cpu_syncs_without_device_attrs_take_the_backend_device(tmp_path: Path) -> None:
    # the loops' own coarse sync phase (hooks off) has no attrs: the backend says cpu
    run = Run(tmp_path, "torch_cpu").epochs(1, 1.0)
    for i in range(100):
        run.span("sync", "item", i * 10 * MS, i * 10 * MS + 8 * MS)
    assert by_id(diagnose(run.load()), "sync-bound") == []


def test_device_bound_vs_serialisation_by_gpu_utilisation(tmp_path: Path) -> None:
    busy_dir, idle_dir = tmp_path / "busy", tmp_path / "idle"
    busy_dir.mkdir()
    idle_dir.mkdir()
    busy = syncs_every(Run(busy_dir).epochs(1, 10.0), period_ms=100, sync_ms=40, total_s=10, device="cuda")
    busy.tel("gpu_util_pct", util(10, busy=95))
    idle = syncs_every(Run(idle_dir).epochs(1, 10.0), period_ms=100, sync_ms=40, total_s=10, device="cuda")
    idle.tel("gpu_util_pct", util(10, busy=90, idle=3, syncs=idle))

    (fb,) = by_id(diagnose(busy.load()), "sync-bound")
    assert "device-bound" in fb.claim and fb.evidence[1] == "split: device-bound"
    assert fb.severity == "medium"
    assert any("during the syncs 95%" in e for e in fb.evidence)

    (fi,) = by_id(diagnose(idle.load()), "sync-bound")
    assert "serialisation" in fi.claim and fi.evidence[1] == "split: serialisation"
    assert any("during the syncs" in e and "gpu_util_pct" in e for e in fi.evidence)
    u = float(next(e for e in fi.evidence if "during the syncs" in e).split("syncs ")[1].split("%")[0])
    assert u < 20


def test_apple_active_residency_also_splits(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_mps").epochs(1, 10.0)
    syncs_every(run, period_ms=100, sync_ms=60, total_s=10, device="mps")
    run.tel("gpu_active_pct", util(10, busy=92, period_ms=100), source="powermetrics")
    (f,) = by_id(diagnose(run.load()), "sync-bound")
    assert f.severity == "medium" and "device-bound" in f.claim
    assert any("gpu_active_pct from powermetrics" in e for e in f.evidence)


def test_unhooked_syncs_found_in_stack_samples(tmp_path: Path) -> None:
    # no sync spans at all (hooks off): long samples whose leaf is torch's C item() count
    run = Run(tmp_path).epochs(1, 1.0)
    main = run.frame("main", USER, 10)
    loop = run.frame("train_epoch", USER, 57, first_line=50)
    item = run.frame("Tensor.item", "<built-in>", 0, library=True)
    fwd = run.frame("forward", "/x/site-packages/torch/nn/modules/module.py", 1, library=True)
    t = 0
    for _ in range(100):
        run.sample([main, loop, item], t, 6 * MS)
        run.sample([main, loop, fwd], t + 6 * MS, 4 * MS)
        t += 10 * MS
    (f,) = by_id(diagnose(run.load()), "sync-bound")
    assert "60%" in f.claim
    assert any("unhooked syncs seen only in stack samples" in e for e in f.evidence)
    assert (f.call_sites[0].file, f.call_sites[0].line) == (USER, 57)


# -- input-bound -----------------------------------------------------------------------------------


def _input_run(tmp_path: Path, data_ms: float) -> Run:
    run = Run(tmp_path, "torch_cuda").epochs(1, 1.0)
    main = run.frame("main", USER, 10)
    loader = "/x/site-packages/torch/utils/data/dataloader.py"
    nxt = run.frame("_SingleProcessDataLoaderIter.__next__", loader, 700, True)
    getitem = run.frame("NoisyImages.__getitem__", USER, 30, first_line=28)
    blur = run.frame("box_blur", USER, 20, first_line=15)
    collate = run.frame("default_collate", "/x/site-packages/torch/utils/data/_utils/collate.py", 300, True)
    stack = run.frame("_VariableFunctionsClass.stack", "<built-in>", 0, True)
    step = run.frame("train_step", USER, 60)
    for b in range(10):
        t0 = b * 100 * MS
        d = int(data_ms * MS)
        run.span("data", "collate", t0, t0 + d)
        run.span("batch", "train", t0, t0 + 100 * MS)
        run.sample([main, nxt, getitem, blur], t0, int(d * 0.8))
        run.sample([main, nxt, collate, stack], t0 + int(d * 0.8), d - int(d * 0.8))
        run.sample([main, step], t0 + d, 100 * MS - d)
    return run


def test_input_bound_fires_and_names_getitem_and_collate(tmp_path: Path) -> None:
    (f,) = by_id(diagnose(_input_run(tmp_path, 40).load()), "input-bound")
    assert "40%" in f.claim
    assert "NoisyImages.__getitem__" in f.claim  # named in the claim
    assert f.evidence[0].startswith("10 batch fetches ('data' phases)")
    assert any("default_collate" in e for e in f.evidence)
    assert (f.call_sites[0].file, f.call_sites[0].line) == (USER, 28)  # the __getitem__ def line
    assert f.call_sites[0].seconds == pytest.approx(0.32, rel=1e-3)


def test_input_bound_quiet_for_fast_loading(tmp_path: Path) -> None:
    assert by_id(diagnose(_input_run(tmp_path, 5).load()), "input-bound") == []


def test_input_bound_from_samples_alone_for_a_script(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cpu")
    run.meta["kind"] = "script"
    imp = run.frame("_find_and_load", "<frozen importlib._bootstrap>", 1, True)
    main = run.frame("<module>", USER, 1)
    getitem = run.frame("Digits.__getitem__", USER, 30, first_line=28)
    step = run.frame("step", USER, 60)
    run.sample([main, imp], 0, 2 * S)  # 2 s importing torch: left out of the share
    for i in range(20):
        t = 2 * S + i * 100 * MS
        run.sample([main, getitem], t, 60 * MS)
        run.sample([main, step], t + 60 * MS, 40 * MS)
    (f,) = by_id(diagnose(run.load()), "input-bound")
    assert "60%" in f.claim and "__getitem__" in f.claim


# -- device-idle -----------------------------------------------------------------------------------


def test_device_idle_fires_when_the_gpu_waits(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda").epochs(2, 1.0).tel("gpu_util_pct", util(2, busy=18))
    (f,) = by_id(diagnose(run.load()), "device-idle")
    assert f.severity == "high" and "18%" in f.claim


def test_device_idle_names_host_lines_but_not_imports(tmp_path: Path) -> None:
    """A script's `import torch` line is start-up, not where the host keeps the GPU waiting."""
    run = Run(tmp_path, "torch_cuda")
    run.meta["kind"] = "script"
    imp = run.frame("_find_and_load", "<frozen importlib._bootstrap>", 1, True)
    import_line = run.frame("<module>", USER, 3)
    work_line = run.frame("<module>", USER, 40)
    run.sample([import_line, imp], 0, 3 * S)  # longer than the work: it would top the list
    run.sample([work_line], 3 * S, 2 * S)
    run.tel("gpu_util_pct", [(t, 10.0) for t, _ in util(5, busy=10)])
    (f,) = by_id(diagnose(run.load()), "device-idle")
    assert [(c.file, c.line) for c in f.call_sites] == [(USER, 40)]


def test_device_idle_quiet_when_busy(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda").epochs(2, 1.0).tel("gpu_util_pct", util(2, busy=85))
    assert by_id(diagnose(run.load()), "device-idle") == []


def test_device_idle_quiet_on_a_cpu_backend(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cpu").epochs(2, 1.0).tel("gpu_util_pct", util(2, busy=0))
    assert by_id(diagnose(run.load()), "device-idle") == []


def test_device_idle_without_telemetry_says_nothing(tmp_path: Path) -> None:
    assert by_id(diagnose(Run(tmp_path, "torch_cuda").epochs(2, 1.0).load()), "device-idle") == []


# -- lazy-graph ------------------------------------------------------------------------------------


def test_lazy_graph_fires_for_one_long_eval_per_epoch(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_gpu", sync="lazy").epochs(3, 4.0, batches=100, batch_s=0.01)
    for e in range(3):
        run.span("sync", "eval", e * 4 * S + 1 * S, e * 4 * S + 4 * S, caller="/c/loops/mlx_loop.py:68", device="gpu")
    run.tel("mlx_active_bytes", [(e * 4 * S + i * 100 * MS, float(i * 2**28)) for e in range(3) for i in range(10)])
    (f,) = by_id(diagnose(run.load()), "lazy-graph")
    assert "3 evals for 300 batches" in f.claim
    assert any("config.sync is 'lazy'" in e for e in f.evidence)
    assert any("climbed" in e for e in f.evidence)
    assert f.call_sites[0].line == 68


def test_lazy_graph_quiet_for_per_batch_evals(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_gpu").epochs(1, 2.0, batches=100)
    for b in range(100):
        run.span("sync", "mx.eval", b * 20 * MS + 5 * MS, b * 20 * MS + 15 * MS, device="gpu")
    assert by_id(diagnose(run.load()), "lazy-graph") == []


def test_lazy_graph_only_for_mlx(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda", sync="lazy").epochs(1, 4.0, batches=100)
    run.span("sync", "eval", 1 * S, 4 * S, device="cuda")
    assert by_id(diagnose(run.load()), "lazy-graph") == []


# -- warmup ----------------------------------------------------------------------------------------


def test_warmup_fires_for_a_slow_first_step(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda").epochs(1, 5.0)
    run.span("batch", "train", 0, 2 * S)
    for b in range(60):
        run.span("batch", "train", 2 * S + b * 50 * MS, 2 * S + (b + 1) * 50 * MS)
    (f,) = by_id(diagnose(run.load()), "warmup")
    assert "first training step takes 2.00 s, 40x" in f.claim
    assert f.severity == "medium"  # 1.95 s of 5 s


def test_warmup_quiet_for_even_steps(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda").epochs(3, 3.0, batches=60)
    assert by_id(diagnose(run.load()), "warmup") == []


def test_warmup_ignores_tiny_absolute_differences(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cpu").epochs(1, 1.0)
    run.span("batch", "train", 0, 20 * MS)  # 20x slower, but only 19 ms
    for b in range(60):
        run.span("batch", "train", 20 * MS + b * MS, 21 * MS + b * MS)
    assert by_id(diagnose(run.load()), "warmup") == []


# -- throttling ------------------------------------------------------------------------------------


def test_throttling_from_thermal_pressure(tmp_path: Path) -> None:
    levels = [(i * 100 * MS, 2.0 if 30 <= i < 60 else 0.0) for i in range(100)]
    run = Run(tmp_path, "mlx_gpu").epochs(1, 10.0).tel("thermal_pressure_level", levels, "powermetrics")
    (f,) = by_id(diagnose(run.load()), "throttling")
    assert f.severity == "medium"
    assert any("30% of 100 readings (max Heavy)" in e for e in f.evidence)


def test_throttling_from_nvml_clock_event_reasons(tmp_path: Path) -> None:
    reasons = [(i * 100 * MS, float(0x40 if i % 2 else 0x0)) for i in range(100)]
    run = Run(tmp_path).epochs(1, 10.0).tel("clock_event_reasons", reasons)
    run.tel("sm_clock_mhz", [(i * 100 * MS, 1400.0 - 500 * (i % 2)) for i in range(100)])
    (f,) = by_id(diagnose(run.load()), "throttling")
    assert f.severity == "high" and "thermal" in f.claim
    assert any("SM clock median" in e for e in f.evidence)


def test_no_throttling_when_nominal_or_only_idle(tmp_path: Path) -> None:
    run = Run(tmp_path).epochs(1, 10.0)
    run.tel("thermal_pressure_level", [(i * 100 * MS, 0.0) for i in range(100)], "powermetrics")
    run.tel("clock_event_reasons", [(i * 100 * MS, 1.0) for i in range(100)])  # GpuIdle only
    assert by_id(diagnose(run.load()), "throttling") == []


# -- whole runs and renderers ----------------------------------------------------------------------


def test_a_run_with_only_run_json_gives_no_findings(tmp_path: Path) -> None:
    d = tmp_path / "bare"
    d.mkdir()
    write_json(d / schema.RUN_JSON, {"schema_version": 1, "t0_perf_ns": 0, "status": "failed"})
    assert diagnose(RunData(d)) == []


def test_findings_are_sorted_and_render(tmp_path: Path) -> None:
    run = syncs_every(Run(tmp_path).epochs(1, 10.0), period_ms=100, sync_ms=60, total_s=10, device="cuda")
    run.tel("thermal_pressure_level", [(i * 100 * MS, 1.0) for i in range(100)], "powermetrics")
    findings = diagnose(run.load())
    assert [f.id for f in findings] == ["sync-bound", "throttling"]  # high before low
    data = json.loads(findings_json(findings))
    assert set(data[0]) == {"id", "severity", "claim", "evidence", "fix", "call_sites"}
    assert data[0]["call_sites"][0] == {"file": USER, "line": 42, "count": 100, "seconds": pytest.approx(6.0)}
    out = io.StringIO()
    Console(file=out, width=160).print(findings_table(findings))
    text = out.getvalue()
    assert "sync-bound" in text and "throttling" in text and "train.py:42" in text
    out = io.StringIO()
    Console(file=out, width=100).print(findings_table([]))
    assert "No bottleneck" in out.getvalue()
