"""The diagnosis rules on constructed run directories: each must fire where it should and stay
quiet where it should not. No torch, no mlx: the rules read only run directories."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from diagnosis_runs import MS, USER, Run, S, by_id, syncs_every, util
from rich.console import Console

from cnnprof.reports.diagnosis import diagnose, diagnosis_json, diagnosis_table
from cnnprof.reports.findings import Finding
from cnnprof.traces import schema
from cnnprof.traces.reader import RunData
from cnnprof.traces.writer import write_json


def findings(run: RunData) -> list[Finding]:
    return diagnose(run).findings


# -- sync-bound ------------------------------------------------------------------------------------


def test_sync_bound_fires_on_cuda_and_names_the_call_site(tmp_path: Path) -> None:
    run = syncs_every(Run(tmp_path).epochs(1, 10.0), period_ms=100, sync_ms=40, total_s=10, device="cuda")
    run.span("sync", "Tensor.item", 9_950 * MS, 9_951 * MS, caller=f"{USER}:99", device="cuda")
    (f,) = by_id(findings(run.load()), "sync-bound")
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
    found = findings(run.load())
    assert by_id(found, "sync-bound") == []
    (info,) = by_id(found, "sync-sites")
    assert info.severity == "info"
    assert "200 blocking-sync calls (Tensor.item x200) on cuda cost little here" in info.claim
    assert "below the 20%" in info.evidence[0]
    assert (info.call_sites[0].file, info.call_sites[0].line, info.call_sites[0].count) == (USER, 42, 200)


def test_a_few_cheap_gpu_syncs_are_not_named(tmp_path: Path) -> None:
    # the tuned loop: loss and accuracy read once per epoch
    run = syncs_every(Run(tmp_path).epochs(1, 10.0), period_ms=1000, sync_ms=2, total_s=10, device="cuda")
    assert [f.id for f in findings(run.load()) if f.id.startswith("sync")] == []


@pytest.mark.parametrize("backend", ["torch_cpu", "mlx_cpu"])
def test_syncs_on_the_cpu_device_are_no_syncs(tmp_path: Path, backend: str) -> None:
    """10,000 reads on the CPU device, half the wall time: no sync finding of any kind (nothing
    waits for a device), and the verdict is the CPU's computation."""
    run = Run(tmp_path, backend).epochs(1, 10.0)
    syncs_every(run, period_ms=1, sync_ms=0.5, total_s=10, device="cpu")
    result = diagnose(run.load())
    assert [f.id for f in result.findings if f.id.startswith("sync")] == []
    assert result.verdict.id == "compute-bound"


def test_mlx_cpu_evals_are_named_as_the_computation(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_cpu").epochs(1, 2.0, batches=100)
    for b in range(100):
        run.span("sync", "mx.eval", b * 20 * MS + 2 * MS, b * 20 * MS + 19 * MS, caller=f"{USER}:7", device="cpu")
    verdict = diagnose(run.load()).verdict
    assert verdict.id == "compute-bound"
    assert any("100 mx.eval calls" in e and "the computation itself" in e for e in verdict.evidence)


def test_cpu_syncs_without_device_attrs_take_the_backend_device(tmp_path: Path) -> None:
    # the loops' own coarse sync phase (hooks off) has no attrs: the backend says cpu
    run = Run(tmp_path, "torch_cpu").epochs(1, 1.0)
    for i in range(100):
        run.span("sync", "item", i * 10 * MS, i * 10 * MS + 8 * MS)
    assert by_id(findings(run.load()), "sync-bound") == []


def test_device_bound_vs_serialisation_by_gpu_utilisation(tmp_path: Path) -> None:
    busy_dir, idle_dir = tmp_path / "busy", tmp_path / "idle"
    busy_dir.mkdir()
    idle_dir.mkdir()
    busy = syncs_every(Run(busy_dir).epochs(1, 10.0), period_ms=100, sync_ms=40, total_s=10, device="cuda")
    busy.tel("gpu_util_pct", util(10, busy=95))
    idle = syncs_every(Run(idle_dir).epochs(1, 10.0), period_ms=100, sync_ms=40, total_s=10, device="cuda")
    idle.tel("gpu_util_pct", util(10, busy=90, idle=3, syncs=idle))

    busy_findings = findings(busy.load())
    assert by_id(busy_findings, "sync-bound") == []  # the wait is the GPU's work: not a sync problem
    (fb,) = by_id(busy_findings, "sync-sites")
    assert "device-bound" in fb.claim and fb.evidence[1] == "split: device-bound"
    assert fb.severity == "info"
    assert any("during the syncs 95%" in e for e in fb.evidence)
    assert "they cost at most the GPU's idle time, 5% of the step" in fb.claim  # what removing them could save

    (fi,) = by_id(findings(idle.load()), "sync-bound")
    assert "serialisation" in fi.claim and fi.evidence[1] == "split: serialisation"
    assert any("during the syncs" in e and "gpu_util_pct" in e for e in fi.evidence)
    u = float(next(e for e in fi.evidence if "during the syncs" in e).split("syncs ")[1].split("%")[0])
    assert u < 20


def test_apple_active_residency_also_splits(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_mps").epochs(1, 10.0)
    syncs_every(run, period_ms=100, sync_ms=60, total_s=10, device="mps")
    run.tel("gpu_active_pct", util(10, busy=92, period_ms=100), source="powermetrics")
    (f,) = by_id(findings(run.load()), "sync-sites")
    assert f.severity == "info" and "device-bound" in f.claim
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
    (f,) = by_id(findings(run.load()), "sync-bound")
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
    (f,) = by_id(findings(_input_run(tmp_path, 40).load()), "input-bound")
    assert "40%" in f.claim
    assert "NoisyImages.__getitem__" in f.claim  # named in the claim
    assert f.evidence[0].startswith("9 batch fetches: 0.36 s of 0.90 s of 9 steady-state training steps")
    assert any("default_collate" in e for e in f.evidence)
    assert (f.call_sites[0].file, f.call_sites[0].line) == (USER, 28)  # the __getitem__ def line
    assert f.call_sites[0].seconds == pytest.approx(0.288, rel=1e-3)  # 9 steady steps x 32 ms
    assert f.call_sites[0].unit == "samples"


def test_input_bound_quiet_for_fast_loading(tmp_path: Path) -> None:
    assert by_id(findings(_input_run(tmp_path, 5).load()), "input-bound") == []


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
    (f,) = by_id(findings(run.load()), "input-bound")
    assert "60%" in f.claim and "__getitem__" in f.claim


# -- device-idle -----------------------------------------------------------------------------------


def test_device_idle_fires_when_the_gpu_waits(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda").epochs(2, 1.0).tel("gpu_util_pct", util(2, busy=18))
    (f,) = by_id(findings(run.load()), "device-idle")
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
    (f,) = by_id(findings(run.load()), "device-idle")
    assert [(c.file, c.line) for c in f.call_sites] == [(USER, 40)]


def test_device_idle_quiet_when_busy(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda").epochs(2, 1.0).tel("gpu_util_pct", util(2, busy=85))
    assert by_id(findings(run.load()), "device-idle") == []


def test_device_idle_quiet_on_a_cpu_backend(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cpu").epochs(2, 1.0).tel("gpu_util_pct", util(2, busy=0))
    assert by_id(findings(run.load()), "device-idle") == []


def test_device_idle_without_telemetry_says_nothing(tmp_path: Path) -> None:
    assert by_id(findings(Run(tmp_path, "torch_cuda").epochs(2, 1.0).load()), "device-idle") == []


# -- lazy-graph ------------------------------------------------------------------------------------


def test_lazy_graph_fires_for_one_long_eval_per_epoch(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_gpu", sync="lazy").epochs(3, 4.0, batches=100, batch_s=0.01)
    for e in range(3):
        run.span("sync", "eval", e * 4 * S + 1 * S, e * 4 * S + 4 * S, caller="/c/loops/mlx_loop.py:68", device="gpu")
    (f,) = by_id(findings(run.load()), "lazy-graph")
    assert "3 evals for 300 steps" in f.claim
    assert any("config.sync is 'lazy'" in e for e in f.evidence)
    assert f.call_sites[0].line == 68


def test_lazy_graph_quiet_for_per_batch_evals(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_gpu").epochs(1, 2.0, batches=100)
    for b in range(100):
        run.span("sync", "mx.eval", b * 20 * MS + 5 * MS, b * 20 * MS + 15 * MS, device="gpu")
    assert by_id(findings(run.load()), "lazy-graph") == []


@pytest.mark.parametrize("async_evals", [False, True], ids=["one-eval-per-epoch", "async-eval-per-step"])
def test_lazy_graph_counts_async_evals_as_evaluations(tmp_path: Path, async_evals: bool) -> None:
    """As MLX's tuned loop on the H200: an epoch-end eval waiting 0.1 s (5 steps) for the queued
    work. Without an `mx.async_eval` per step that is a graph built over the epoch; with one it
    is not."""
    run = Run(tmp_path, "mlx_gpu").epochs(1, 2.1, batches=100)
    run.span("sync", "mx.eval", 2 * S, int(2.1 * S), device="gpu")
    if async_evals:
        for b in range(100):
            run.span("hook", "async_eval", b * 20 * MS + 15 * MS, b * 20 * MS + 16 * MS)
    assert len(by_id(findings(run.load()), "lazy-graph")) == (0 if async_evals else 1)


def test_lazy_graph_only_for_mlx(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda", sync="lazy").epochs(1, 4.0, batches=100)
    run.span("sync", "eval", 1 * S, 4 * S, device="cuda")
    assert by_id(findings(run.load()), "lazy-graph") == []


# -- warmup ----------------------------------------------------------------------------------------


def test_warmup_fires_for_a_slow_first_step(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda").epochs(1, 5.0)
    run.span("batch", "train", 0, 2 * S)
    for b in range(60):
        run.span("batch", "train", 2 * S + b * 50 * MS, 2 * S + (b + 1) * 50 * MS)
    (f,) = by_id(findings(run.load()), "warmup")
    assert "first training step takes 2.00 s, 40x" in f.claim
    assert f.severity == "medium"  # 1.95 s of 5 s


def test_warmup_quiet_for_even_steps(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cuda").epochs(3, 3.0, batches=60)
    assert by_id(findings(run.load()), "warmup") == []


def test_warmup_ignores_tiny_absolute_differences(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cpu").epochs(1, 1.0)
    run.span("batch", "train", 0, 20 * MS)  # 20x slower, but only 19 ms
    for b in range(60):
        run.span("batch", "train", 20 * MS + b * MS, 21 * MS + b * MS)
    assert by_id(findings(run.load()), "warmup") == []


# -- throttling ------------------------------------------------------------------------------------


def test_throttling_from_thermal_pressure(tmp_path: Path) -> None:
    levels = [(i * 100 * MS, 2.0 if 30 <= i < 60 else 0.0) for i in range(100)]
    run = Run(tmp_path, "mlx_gpu").epochs(1, 10.0).tel("thermal_pressure_level", levels, "powermetrics")
    (f,) = by_id(findings(run.load()), "throttling")
    assert f.severity == "medium"
    assert any("30% of 100 readings (max Heavy)" in e for e in f.evidence)


def test_throttling_from_nvml_clock_event_reasons(tmp_path: Path) -> None:
    reasons = [(i * 100 * MS, float(0x40 if i % 2 else 0x0)) for i in range(100)]
    run = Run(tmp_path).epochs(1, 10.0).tel("clock_event_reasons", reasons)
    run.tel("sm_clock_mhz", [(i * 100 * MS, 1400.0 - 500 * (i % 2)) for i in range(100)])
    (f,) = by_id(findings(run.load()), "throttling")
    assert f.severity == "high" and "thermal" in f.claim
    assert any("SM clock median" in e for e in f.evidence)


def test_no_throttling_when_nominal_or_only_idle(tmp_path: Path) -> None:
    run = Run(tmp_path).epochs(1, 10.0)
    run.tel("thermal_pressure_level", [(i * 100 * MS, 0.0) for i in range(100)], "powermetrics")
    run.tel("clock_event_reasons", [(i * 100 * MS, 1.0) for i in range(100)])  # GpuIdle only
    assert by_id(findings(run.load()), "throttling") == []


# -- whole runs and renderers ----------------------------------------------------------------------


def test_a_run_with_only_run_json_gives_no_findings(tmp_path: Path) -> None:
    d = tmp_path / "bare"
    d.mkdir()
    write_json(d / schema.RUN_JSON, {"schema_version": 1, "t0_perf_ns": 0, "status": "failed"})
    result = diagnose(RunData(d))
    assert result.findings == []
    assert result.verdict.id == "compute-bound" and "no training steps found" in result.verdict.window


def test_findings_are_sorted_and_render(tmp_path: Path) -> None:
    run = syncs_every(Run(tmp_path).epochs(1, 10.0), period_ms=100, sync_ms=60, total_s=10, device="cuda")
    run.tel("thermal_pressure_level", [(i * 100 * MS, 1.0) for i in range(100)], "powermetrics")
    result = diagnose(run.load())
    assert [f.id for f in result.findings] == ["sync-bound", "throttling"]  # high before low
    data = json.loads(diagnosis_json(result))
    assert set(data) == {"verdict", "findings"}
    assert data["verdict"]["id"] == "sync-bound"
    assert set(data["findings"][0]) == {"id", "severity", "claim", "evidence", "fix", "call_sites"}
    site = {"file": USER, "line": 42, "count": 100, "seconds": pytest.approx(6.0), "unit": "calls"}
    assert data["findings"][0]["call_sites"][0] == site
    out = io.StringIO()
    Console(file=out, width=160).print(diagnosis_table(result))
    text = out.getvalue()
    assert "Verdict: sync-bound" in text
    assert "sync-bound" in text and "throttling" in text and "train.py:42 (100 calls" in text


@pytest.mark.parametrize(
    ("kinds", "workers", "cause"),
    [
        ({"wait": 6.0, "transfer": 2.0, "work": 2.0}, 2, "wait"),  # the workers can't keep up
        ({"transfer": 3.0, "work": 5.0, "wait": 2.0}, 2, "transfer"),  # moving batches: the loader's own IPC
        ({"work": 9.0, "wait": 1.0}, 0, "work"),  # no workers: the main process makes the samples
    ],
)
def test_input_cause_from_what_the_main_process_did(kinds: dict[str, float], workers: int, cause: str) -> None:
    from cnnprof.reports.diagnosis.input import _cause

    assert _cause(kinds, sum(kinds.values()), workers, None) == cause


@pytest.mark.parametrize(("work_s", "cause"), [(0.9, "wait"), (0.1, "transfer")])
def test_input_cause_from_the_workers_own_samples(work_s: float, cause: str) -> None:
    """The main process's fetch time looks like moving batches (its samples are in the shared-memory
    handover, waiting on the workers' busy resource sharer): the workers' samples tell the two apart."""
    from cnnprof.reports.diagnosis.input import _cause
    from cnnprof.reports.diagnosis.workers import WorkerTime

    kinds = {"transfer": 6.0, "wait": 3.0, "work": 1.0}
    assert _cause(kinds, 10.0, 2, WorkerTime(2, sampled_s=1.0, work_s=work_s)) == cause
