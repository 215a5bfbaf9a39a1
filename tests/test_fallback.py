"""MPS CPU fallbacks: the observer on the warning text as PyTorch's MPSFallback.mm emits it (MPS
cannot run here: a fake op warns as the C++ side would), and the `cpu-fallback` rule."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
from diagnosis_runs import MS, USER, Run, by_id

from cnnprof.profiler.fallback import KIND, FallbackObserver, fallback_op
from cnnprof.profiler.session import RunSession, SessionOptions
from cnnprof.reports.diagnosis import diagnose
from cnnprof.traces.reader import RunData

# The text of mps_fallback's TORCH_WARN_ONCE (aten/src/ATen/mps/MPSFallback.mm) as Python sees it.
TEXT = (
    "The operator '{op}' is not currently supported on the MPS backend and will fall back to run on the CPU. "
    "This may have performance implications. (Triggered internally at "
    "/Users/runner/work/pytorch/pytorch/pytorch/aten/src/ATen/mps/MPSFallback.mm:14.)"
)


def fake_mps_op(op: str) -> None:
    """A C++ op warns at stack level 1: the warning is attributed to the Python line calling it."""
    warnings.warn(TEXT.format(op=op), UserWarning, stacklevel=2)


def test_fallback_op_reads_the_op_name() -> None:
    assert fallback_op(TEXT.format(op="aten::bitwise_and.Tensor_out")) == "aten::bitwise_and.Tensor_out"
    assert fallback_op("The op is currently not supported on MPS.") is None


def test_every_fallback_call_is_recorded_and_the_user_sees_one_per_op(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    before = (warnings.showwarning, list(warnings.filters))
    session = RunSession(SessionOptions(tmp_path, "script", "t", ["test"]), [FallbackObserver()])
    with session:
        for _ in range(5):
            fake_mps_op("aten::_linalg_solve_ex.result")  # the call site
        line = sys._getframe().f_lineno - 1
        fake_mps_op("aten::upsample_nearest3d.vec")
        fake_mps_op("aten::upsample_nearest3d.vec")
        warnings.warn("something else", DeprecationWarning, stacklevel=1)
    assert (warnings.showwarning, list(warnings.filters)) == before  # all put back
    spans = [row for row in session.recorder.rows if row[0] == KIND]
    assert [row[1] for row in spans] == ["aten::_linalg_solve_ex.result"] * 5 + ["aten::upsample_nearest3d.vec"] * 2
    assert spans[0][6] == f"{__file__}:{line}"
    assert spans[0][7]["stack"][0].startswith(f"{__file__}:{line} test_every_fallback_call")
    shown = [str(w.message) for w in recwarn]
    assert [fallback_op(m) for m in shown if fallback_op(m)] == [
        "aten::_linalg_solve_ex.result",
        "aten::upsample_nearest3d.vec",
    ]
    assert "something else" in shown  # other warnings pass through
    assert session.record.section("fallbacks")["calls"] == 7
    (f,) = by_id(diagnose(RunData(session.run_dir)).findings, "cpu-fallback")
    assert (
        f.claim
        == "7 op calls fell back from MPS to the CPU (aten::_linalg_solve_ex.result, aten::upsample_nearest3d.vec)"
    )
    assert f.call_sites[0].line == line and f.call_sites[0].count == 5


def test_after_the_run_fallback_warnings_are_not_recorded(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    observer = FallbackObserver()
    session = RunSession(SessionOptions(tmp_path, "script", "t", ["test"]), [observer])
    with session:
        pass
    fake_mps_op("aten::col2im")
    assert observer.count == 0 and len(recwarn) == 1


def test_rule_weighs_the_fallback_lines_by_their_stack_samples(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_mps").epochs(1, 1.0)
    user = run.frame("train", USER, 30)
    for i in range(20):
        run.span(KIND, "aten::_linalg_solve_ex.result", i * 50 * MS, i * 50 * MS, f"{USER}:30")
    other = run.frame("train", USER, 31)
    for i in range(100):
        run.sample([user] if i < 30 else [other], i * 10 * MS, 10 * MS)  # 0.3 s of 1 s at line 30
    (f,) = by_id(diagnose(run.load()).findings, "cpu-fallback")
    assert f.severity == "high"
    assert f.evidence[0] == f"aten::_linalg_solve_ex.result: 20 calls (0.00-0.95 s), from {USER}:30"
    assert f.evidence[1].startswith("0.30 s of stack samples at these lines (30.0% of")


def test_rule_without_samples_counts_calls(tmp_path: Path) -> None:
    run = Run(tmp_path, "torch_mps").epochs(1, 1.0)
    run.span(KIND, "aten::col2im", 5 * MS, 5 * MS, f"{USER}:9")
    (f,) = by_id(diagnose(run.load()).findings, "cpu-fallback")
    assert f.severity == "low" and f.evidence[-1].startswith("no stack samples")
