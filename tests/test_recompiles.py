"""Compile events and the `recompiles` rule: mx.compile retraces (real MLX on the CPU), torch.compile
recompiles (backend "eager": Dynamo's guards and recompiles without inductor's C++ build, which
takes minutes here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from diagnosis_runs import MS, Run, by_id

from cnnprof.profiler.recompiles import KIND, CompileObserver, describe_inputs
from cnnprof.profiler.session import RunSession, SessionOptions
from cnnprof.reports.diagnosis import diagnose
from cnnprof.traces.reader import RunData


def observed(tmp_path: Path, work: Any) -> tuple[RunSession, Any]:
    session = RunSession(SessionOptions(tmp_path, "script", "t", ["test"]), [CompileObserver()])
    with session:
        out = work()
    return session, out


def compile_spans(session: RunSession) -> list[tuple[Any, ...]]:
    return [row for row in session.recorder.rows if row[0] == KIND]


# -- MLX ----------------------------------------------------------------------------------------
mx = pytest.importorskip("mlx.core")


def step(x: Any, w: Any) -> Any:
    return (x @ w).sum()


def run_mlx(shapes: list[tuple[int, ...]], **compile_kwargs: Any) -> int:
    fast = mx.compile(step, **compile_kwargs)
    w = mx.ones((4, 2))
    for shape in shapes:
        mx.eval(fast(mx.ones(shape), w))  # the call site
    return sys._getframe().f_lineno - 1


def test_mlx_changing_shapes_make_a_recompiles_finding(tmp_path: Path) -> None:
    original = mx.compile
    session, line = observed(tmp_path, lambda: run_mlx([(8, 4), (8, 4), (16, 4), (24, 4), (32, 4), (8, 4)]))
    assert mx.compile is original  # restored
    spans = compile_spans(session)
    assert [row[7]["trace"] for row in spans] == [1, 2, 3, 4]
    assert spans[1][7]["inputs"] == ["float32[16,4]", "float32[4,2]"]
    assert all(row[6] == f"{__file__}:{line}" for row in spans)
    (f,) = by_id(diagnose(RunData(session.run_dir)).findings, "recompiles")
    assert f.claim.startswith("step was recompiled 3 times after its first compile (mlx)")
    assert "input 0: float32[8,4] -> float32[16,4] -> float32[24,4] -> float32[32,4]" in f.evidence
    assert not any(e.startswith("input 1") for e in f.evidence)  # w never changed
    assert (f.call_sites[0].file, f.call_sites[0].line, f.call_sites[0].count) == (__file__, line, 3)
    assert "shapeless=True" in f.fix


@pytest.mark.parametrize(
    ("shapes", "kwargs"),
    [([(8, 4), (16, 4), (24, 4)], {"shapeless": True}), ([(8, 4)] * 4, {})],
    ids=["shapeless", "fixed-shapes"],
)
def test_mlx_shapeless_or_fixed_shapes_give_no_finding(tmp_path: Path, shapes: list, kwargs: dict) -> None:
    session, _ = observed(tmp_path, lambda: run_mlx(shapes, **kwargs))
    assert len(compile_spans(session)) == 1  # the first trace, warm-up
    assert by_id(diagnose(RunData(session.run_dir)).findings, "recompiles") == []


def test_mlx_shapeless_still_retraces_on_a_new_ndim(tmp_path: Path) -> None:
    def work() -> None:
        fast = mx.compile(lambda x: x.sum(), shapeless=True)
        for shape in [(4,), (5,), (2, 3)]:
            mx.eval(fast(mx.ones(shape)))

    session, _ = observed(tmp_path, work)
    (f,) = by_id(diagnose(RunData(session.run_dir)).findings, "recompiles")
    assert "input 0: float32[4] -> float32[2,3]" in f.evidence
    assert f.fix.startswith("shapeless=True does not cover a new ndim or dtype")


def test_a_function_compiled_in_the_run_works_after_it(tmp_path: Path) -> None:
    session, fast = observed(tmp_path, lambda: mx.compile(step))
    assert fast(mx.ones((3, 4)), mx.ones((4, 2))).item() == 24.0
    assert compile_spans(session) == [] and session.record.section("compiles")["mlx_hooked"]


def test_mlx_disable_compile_turns_the_hook_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLX_DISABLE_COMPILE", "1")
    original = mx.compile
    session, _ = observed(tmp_path, lambda: mx.compile is original)
    assert session.record.section("compiles")["mlx_hooked"] is False


def test_describe_inputs_flattens_and_names_constants() -> None:
    x = mx.zeros((2, 3), dtype=mx.int32)
    assert describe_inputs(([x, (x,)], 0.5), {"mask": {"m": x}}) == [
        "int32[2,3]",
        "int32[2,3]",
        "0.5",
        "mask=m=int32[2,3]",
    ]


# -- torch.compile ------------------------------------------------------------------------------
def test_torch_compile_recompile_has_its_reason_and_call_site(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    def f(x: Any) -> Any:
        return torch.sin(x).sum() * 2

    def work() -> tuple[int, Any]:
        static = torch.compile(f, backend="eager", dynamic=False)
        for n in (8, 8, 16):
            static(torch.ones(n))  # the call site
        dynamic = torch.compile(lambda x: torch.cos(x).sum(), backend="eager", dynamic=True)
        for n in (8, 16, 24):
            dynamic(torch.ones(n))
        return sys._getframe().f_lineno - 4, torch.compiler.reset()

    session, (line, _) = observed(tmp_path, work)
    spans = compile_spans(session)
    static = [row for row in spans if row[1] == "f"]
    assert len(static) == 2 and static[0][7]["reason"] is None
    assert "size mismatch at index 0. expected 8, actual 16" in static[1][7]["reason"]
    assert static[1][6] == f"{__file__}:{line}"
    assert all(row[3] > row[2] for row in spans)
    findings = by_id(diagnose(RunData(session.run_dir)).findings, "recompiles")
    assert [f.claim.split(" was ")[0] for f in findings] == ["f"]  # dynamic=True: one compile, no finding
    assert any("size mismatch" in e for e in findings[0].evidence) and "mark_dynamic" in findings[0].fix


def test_a_compiled_module_is_named_and_its_recompile_placed_at_the_forward_line(tmp_path: Path) -> None:
    """torch.compile(model) compiles Dynamo's wrapper ("inner"): named as the module's forward.
    The backward of a training step compiles lazily under the same compile id, from the
    backward's line: the site stays the forward's."""
    torch = pytest.importorskip("torch")

    def work() -> tuple[int, Any]:
        model = torch.nn.Linear(4, 2)
        compiled = torch.compile(model, backend="aot_eager", dynamic=False)
        for n in (8, 8, 16):
            loss = compiled(torch.ones(n, 4)).sum()  # the call site
            loss.backward()
        return sys._getframe().f_lineno - 2, torch.compiler.reset()

    session, (line, _) = observed(tmp_path, work)
    rows = [row for row in compile_spans(session) if row[7]["framework"] == "torch"]
    assert [row[1] for row in rows] == ["compiled module forward"] * 2
    assert rows[1][6] == f"{__file__}:{line}"


def test_code_a_framework_generates_is_never_the_call_site() -> None:
    """AOT autograd runs generated code whose globals are not torch's; its file names torch's."""
    torch = pytest.importorskip("torch")
    from cnnprof.profiler.callsite import call_site

    fake = str(Path(torch.__path__[0]) / "_functorch" / "generated.py")
    code = compile("site = call_site(sys._getframe())", fake, "exec")
    scope: dict[str, Any] = {"__name__": "generated", "call_site": call_site, "sys": sys}
    line = sys._getframe().f_lineno + 1
    exec(code, scope)  # noqa: S102 - the frame under test
    assert scope["site"] == f"{__file__}:{line}"


# -- the rule on constructed runs ---------------------------------------------------------------
def test_costly_retraces_are_high_and_each_function_is_its_own_finding(tmp_path: Path) -> None:
    run = Run(tmp_path, "mlx_gpu").epochs(1, 2.0)
    for i in range(3):
        inputs = [f"float32[{8 * (i + 1)}]"]
        run.span(
            KIND,
            "loss",
            i * 300 * MS,
            i * 300 * MS + 250 * MS,
            "/u/train.py:7",
            framework="mlx",
            trace=i + 1,
            inputs=inputs,
        )
    run.span(KIND, "eval_fn", 0, MS, "/u/train.py:20", framework="mlx", trace=1, inputs=["float32[4]"])
    (f,) = by_id(diagnose(run.load()).findings, "recompiles")
    assert f.severity == "high" and "500.0 ms spent compiling again" in f.claim  # 0.5 s of 2 s


@pytest.mark.parametrize(("retraces", "severity"), [(13, "low"), (60, "medium")])
def test_cheap_retraces_are_medium_only_when_they_keep_coming(tmp_path: Path, retraces: int, severity: str) -> None:
    """Cheap retraces (0.1 ms each) over 530 steps: 13 is each new shape's first sight (as MLX's
    compiled relu on the H200), 60 is shapes that keep changing."""
    from diagnosis_runs import train_steps

    run = Run(tmp_path, "mlx_gpu")
    train_steps(run, 530, start_ms=0.0)
    for i in range(retraces + 1):
        at = int(i * 8 * MS)
        run.span(KIND, "relu", at, at + MS // 10, "/u/train.py:7", framework="mlx", trace=i + 1, inputs=[f"f[{i}]"])
    (f,) = by_id(diagnose(run.load()).findings, "recompiles")
    assert f.severity == severity


def test_recompiles_before_the_first_step_are_setup_and_low(tmp_path: Path) -> None:
    """A compile per batch size while a step is captured (before the first training step) is
    paid once: said, low; the same recompile in the training steps is judged on its cost."""
    from diagnosis_runs import train_steps

    severities = {}
    for late in (False, True):
        folder = tmp_path / str(late)
        folder.mkdir()
        run = Run(folder, "torch_cuda")
        start = 3000.0  # ms: the first step
        train_steps(run, 100, start_ms=start)
        at = int((start + 50 * 9) * MS) if late else 1000 * MS
        run.span(KIND, "forward", 0, 900 * MS, "/u/train.py:7", framework="torch", reason=None)
        reason = "tensor 'x' size mismatch at index 0. expected 512, actual 240"
        run.span(KIND, "forward", at, at + 800 * MS, "/u/train.py:7", framework="torch", reason=reason)
        (f,) = by_id(diagnose(run.load()).findings, "recompiles")
        severities[late] = f
    assert severities[False].severity == "low"
    assert "1 of them before the first training step (setup, paid once)" in severities[False].evidence
    assert severities[True].severity == "high"  # 0.8 s against 0.9 s of steps
