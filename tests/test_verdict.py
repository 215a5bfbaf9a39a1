"""The verdict on constructed run directories: each kind where it must be given, and where not.

The steady state: warm-up steps are left out of every share, and imports and setup never count
as training time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from diagnosis_runs import MS, USER, Run, S, by_id, train_steps, util

from cnnprof.reports.diagnosis import RunView, diagnose


def _steps_run(tmp_path: Path, backend: str = "torch_cuda", **kw: float) -> tuple[Run, float]:
    run = Run(tmp_path, backend)
    end = train_steps(run, 100, device="cuda" if backend == "torch_cuda" else backend.split("_")[1], **kw)
    return run, end


def test_compute_bound_when_the_gpu_is_busy(tmp_path: Path) -> None:
    run, end = _steps_run(tmp_path)
    run.tel("gpu_util_pct", util(end / 1000, busy=96))
    verdict = diagnose(run.load()).verdict
    assert verdict.id == "compute-bound"
    assert verdict.device_busy_pct == pytest.approx(96)
    assert "bf16 autocast" in verdict.fix and "channels_last" in verdict.fix
    assert set(verdict.split) == {"data", "forward", "backward", "optimizer", "sync", "other"}
    assert verdict.split["backward"] == pytest.approx(4 / 9, rel=1e-3)
    assert verdict.step_s == pytest.approx(0.009)


def test_launch_bound_when_the_gpu_idles_and_nothing_explains_it(tmp_path: Path) -> None:
    run, end = _steps_run(tmp_path)
    run.tel("gpu_util_pct", util(end / 1000, busy=30))
    result = diagnose(run.load())
    assert result.verdict.id == "launch-bound"
    assert "CUDA graph" in result.verdict.fix
    assert by_id(result.findings, "device-idle")  # the supporting finding


def test_input_bound_beats_an_idle_gpu(tmp_path: Path) -> None:
    run, end = _steps_run(tmp_path, data_ms=12.0)
    run.tel("gpu_util_pct", util(end / 1000, busy=20))
    verdict = diagnose(run.load()).verdict
    assert verdict.id == "input-bound"
    assert verdict.split["data"] == pytest.approx(12 / 20, rel=1e-3)


def test_sync_bound_only_when_the_gpu_idles_around_the_syncs(tmp_path: Path) -> None:
    idle_dir, busy_dir = tmp_path / "idle", tmp_path / "busy"
    idle_dir.mkdir()
    busy_dir.mkdir()
    idle, end = _steps_run(idle_dir, sync_ms=6.0)
    idle.tel("gpu_util_pct", util(end / 1000, busy=90, idle=5, period_ms=1, syncs=idle))
    assert diagnose(idle.load()).verdict.id == "sync-bound"
    busy, end = _steps_run(busy_dir, sync_ms=6.0)
    busy.tel("gpu_util_pct", util(end / 1000, busy=95, period_ms=1))
    verdict = diagnose(busy.load()).verdict
    assert verdict.id == "compute-bound"  # the host waited for real GPU work: device-bound syncs


def test_mlx_eval_without_telemetry_is_the_devices_work_not_a_sync_problem(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_gpu")
    train_steps(run, 50, data_ms=0.5, fwd_ms=0.5, bwd_ms=0.0, opt_ms=0.5, sync_ms=20.0, device="gpu")
    assert diagnose(run.load()).verdict.id == "compute-bound"


@pytest.mark.parametrize("compiled", [False, True], ids=["eager-step", "compiled-step"])
def test_mlx_half_idle_gpu_is_launch_bound_and_the_fix_knows_a_compiled_step(tmp_path: Path, compiled: bool) -> None:
    """MLX's tuned loop on the H200: every step inside the eval, the GPU busy 51 % (NVML): the host's
    dispatch sets the pace. A step that is an mx.compile'd function is not told to compile it."""
    run = Run(tmp_path, "mlx_gpu")
    end = train_steps(run, 100, data_ms=0.1, fwd_ms=0.3, bwd_ms=0.0, opt_ms=0.1, sync_ms=6.5, device="gpu")
    if compiled:
        for i in range(100):
            run.span("hook", "compiled", int(i * 7 * MS), int(i * 7 * MS + 0.3 * MS))
    run.tel("gpu_util_pct", util(end / 1000, busy=51))
    verdict = diagnose(run.load()).verdict
    assert verdict.id == "launch-bound"
    assert ("compiled already" in verdict.fix) == compiled
    assert ("Compile the whole step" in verdict.fix) != compiled
    assert "MLX_USE_CUDA_GRAPHS=0" in verdict.fix


@pytest.mark.parametrize(("steps", "caveat"), [(30, True), (600, False)], ids=["0.2-s", "4-s"])
def test_a_short_steady_state_says_what_nvmls_busy_share_is_worth(tmp_path: Path, steps: int, caveat: bool) -> None:
    """NVML polled every 100 ms, each reading over the last 200 ms: 30 steps of 7 ms hold no
    whole reading (the caveat), 600 hold dozens (none)."""
    run = Run(tmp_path, "mlx_gpu")
    end = train_steps(run, steps, data_ms=0.1, fwd_ms=0.3, bwd_ms=0.0, opt_ms=0.1, sync_ms=6.5, device="gpu")
    run.tel("gpu_util_pct", util(end / 1000, busy=51, period_ms=100))
    result = diagnose(run.load())
    lines = [e for e in result.verdict.evidence if "a short steady state for nvml" in e]
    assert bool(lines) == caveat
    if caveat:
        (idle,) = by_id(result.findings, "device-idle")
        assert any("each over the last 200 ms" in e for e in idle.evidence)


def test_warmup_is_left_out_of_the_steady_state(tmp_path: Path) -> None:
    """MLX compiling its CUDA kernels in the first step (90 s) must not make the run sync-bound or
    the GPU idle: the steady state is judged without it, and `warmup` says what was left out."""
    run = Run(tmp_path, "mlx_gpu")
    end = train_steps(run, 200, data_ms=0.5, fwd_ms=1.0, bwd_ms=0.0, opt_ms=0.5, sync_ms=6.0, device="gpu",
                      first_ms=90_000.0)
    readings = [(t, 1.0) for t, _ in util(90, busy=1, period_ms=100)]  # idle while compiling
    readings += [(90 * S + t, 92.0) for t, _ in util((end - 90_000) / 1000, busy=92, period_ms=5)]
    run.tel("gpu_util_pct", readings)
    result = diagnose(run.load())
    ids = [f.id for f in result.findings]
    assert "warmup" in ids and "sync-bound" not in ids and "device-idle" not in ids
    assert result.verdict.id == "compute-bound"
    assert "after 1 warm-up step" in result.verdict.window
    (warm,) = by_id(result.findings, "warmup")
    assert "90.00 s" in warm.claim


def test_setup_heavy_names_the_user_lines_before_training(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cpu")
    module = run.frame("<module>", USER, 1)
    convert = run.frame("load", USER, 12, first_line=10)
    imp = run.frame("_find_and_load", "<frozen importlib._bootstrap>", 1, True)
    run.sample([module, imp], 0, 1 * S)  # importing torch: not counted
    run.sample([module, convert], 1 * S, 6 * S)  # tolist() conversions at load
    train_steps(run, 100, start_ms=7_000, device="cpu")
    verdict = diagnose(run.load()).verdict
    assert verdict.id == "setup-heavy"
    assert (verdict.call_sites[0].file, verdict.call_sites[0].line, verdict.call_sites[0].unit) == (USER, 12, "samples")
    assert any("1.00 s imports (not counted)" in e for e in verdict.evidence)


def test_imports_alone_never_make_a_run_setup_heavy(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_cpu")
    module = run.frame("<module>", USER, 1)
    imp = run.frame("_find_and_load", "<frozen importlib._bootstrap>", 1, True)
    run.sample([module, imp], 0, 5 * S)  # a slow `import torch`, longer than the training
    train_steps(run, 100, start_ms=5_000, device="cpu")
    assert diagnose(run.load()).verdict.id == "compute-bound"


def test_cpu_run_is_compute_bound_with_cpu_levers(tmp_path: Path) -> None:
    run, _ = _steps_run(tmp_path, backend="torch_cpu")
    run.meta["step_hooks"] = {"torch_threads": 2}
    verdict = diagnose(run.load()).verdict
    assert verdict.id == "compute-bound"
    assert "torch.set_num_threads" in verdict.fix and "(now 2)" in verdict.fix
    assert verdict.device_busy_pct is None


def test_shares_are_of_the_steady_steps_not_of_idle_time_between_them(tmp_path: Path) -> None:
    """A script that idles 10 s after training (or between epochs) keeps its step split."""
    run = Run(tmp_path, "torch_cuda")
    end = train_steps(run, 50, data_ms=5.0, fwd_ms=1.0, bwd_ms=2.0, opt_ms=2.0)
    module = run.frame("<module>", USER, 99)
    run.sample([module], int(end * MS), 10 * S)
    verdict = diagnose(run.load()).verdict
    assert verdict.id == "input-bound"
    assert verdict.split["data"] == pytest.approx(0.5, rel=1e-3)


def test_mlx_compiles_of_new_shapes_after_the_first_step_are_left_out(tmp_path: Path) -> None:
    """MLX on a fresh machine compiles inside the eval of the first batch of each new size (the
    epoch's last, smaller batch; the first validation batch): seconds each, the GPU idle. Those
    steps are one-off outliers: the steady state is the rest, and MLX's evals are never sync-bound."""
    run = Run(tmp_path, "mlx_gpu")
    t = 0.0
    readings = []
    for epoch in range(3):
        for b in range(100):
            slow = epoch == 0 and b in (0, 99)  # the first step and the first short batch compile
            sync = 8_000.0 if slow else 5.0
            start = t
            t = train_steps(run, 1, start_ms=t, data_ms=0.2, fwd_ms=0.5, bwd_ms=0.0, opt_ms=0.3, sync_ms=sync,
                            device="gpu")
            busy = 2.0 if slow else 90.0
            readings += [(int(x * MS), busy) for x in np.arange(start + 1, t, 2.0)]
    run.tel("gpu_util_pct", readings)
    result = diagnose(run.load())
    assert result.verdict.id == "compute-bound"
    assert "1 one-off slow step left out" in result.verdict.window
    assert not by_id(result.findings, "sync-bound") and not by_id(result.findings, "device-idle")
    (warm,) = by_id(result.findings, "warmup")
    assert any("one-off slow step after warm-up left out too" in e for e in warm.evidence)


def test_a_slow_step_in_many_is_the_steady_state_when_it_is_not_rare(tmp_path: Path) -> None:
    """Every fifth step slow (a periodic checkpoint that costs more than the step): the steady state."""
    run = Run(tmp_path, "torch_cpu")
    t = 0.0
    for i in range(100):
        t = train_steps(run, 1, start_ms=t, fwd_ms=100.0 if i % 5 == 4 else 3.0, device="cpu")
    view = RunView(run.load())
    assert len(view.outliers) == 0 and len(view.steady) == 99


def test_a_host_that_runs_ahead_is_judged_with_the_wait_it_deferred(tmp_path: Path) -> None:
    """A replayed CUDA graph per step: the host's side of a step takes 0.25 ms, then the epoch's
    one read waits 150 ms for the GPU work the host queued. That wait is the steps' time: the
    GPU sets the pace (compute-bound), and the host's batch slicing is no input bottleneck."""
    run = Run(tmp_path)
    t = 0.0
    for _epoch in range(3):
        t = train_steps(run, 100, start_ms=t, data_ms=0.08, fwd_ms=0.0, bwd_ms=0.0, opt_ms=0.17)
        run.span("sync", "Tensor.item", int((t + 0.05) * MS), int((t + 150) * MS), caller=f"{USER}:90", device="cuda")
        t += 150.1
        run.span("validation", "validation", int(t * MS), int((t + 20) * MS))
        run.span("sync", "Tensor.item", int((t + 1) * MS), int((t + 19) * MS), caller=f"{USER}:99", device="cuda")
        t += 20
    run.tel("gpu_util_pct", util(t / 1000, busy=95, period_ms=1))
    ctx = RunView(run.load())
    assert len(ctx.deferred) == 3  # the reads after the steps, not the validation's
    assert ctx.step_median_s == pytest.approx(0.00025 + 0.14995 * 3 / len(ctx.steady), rel=1e-3)
    result = diagnose(run.load())
    assert result.verdict.id == "compute-bound"
    assert result.verdict.split["sync"] == pytest.approx(3 * 149.95 / (300 * 0.25 + 3 * 149.95), rel=0.02)
    assert not by_id(result.findings, "input-bound")
    sites = by_id(result.findings, "sync-sites")[0]  # the waits are for queued GPU work: device-bound
    assert "split: device-bound" in sites.evidence and any("right after the steps" in e for e in sites.evidence)


def test_a_sync_long_after_the_steps_is_not_theirs(tmp_path: Path) -> None:
    run = Run(tmp_path)
    t = train_steps(run, 100, data_ms=0.08, fwd_ms=0.0, bwd_ms=0.0, opt_ms=0.17)
    run.span("sync", "Tensor.item", int((t + 50) * MS), int((t + 200) * MS), caller=f"{USER}:90", device="cuda")
    ctx = RunView(run.load())
    assert len(ctx.deferred) == 0 and ctx.step_median_s == pytest.approx(0.00025, rel=1e-3)
