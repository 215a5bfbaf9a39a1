"""Steps: derived from the hooks' raw spans (traces/steps.py), the steady state (warm-up rule), and
the hooks themselves on real torch / mlx (CPU) code."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cnnprof.profiler.spans import SpanRecorder
from cnnprof.profiler.steps import StepHooks
from cnnprof.reports.diagnosis.steady import warmup_count
from cnnprof.traces.steps import derive_steps, split_steps, step_rows

MS = 1_000_000
REPO = Path(__file__).resolve().parents[1]


def spans(*rows: tuple) -> pd.DataFrame:
    """(kind, name, start_ms, end_ms[, attrs]) -> a spans table in ns."""
    out = []
    for row in rows:
        kind, name, start, end = row[:4]
        attrs = json.dumps(row[4]) if len(row) > 4 else None
        out.append({"kind": kind, "name": name, "start_ns": int(start * MS), "end_ns": int(end * MS), "attrs": attrs})
    return pd.DataFrame(out)


def torch_step(t: float, data: float = 2, fwd: float = 3, bwd: float = 4, opt: float = 1) -> list[tuple]:
    """One step of a torch loop starting at t ms: fetch, forward (unhooked), backward, optimizer."""
    a, b, c = t + data, t + data + fwd, t + data + fwd + bwd
    return [("hook", "data", t, a), ("hook", "backward", b, c), ("hook", "optimizer", c, c + opt)]


def test_torch_steps_tile_from_the_first_fetch_and_split_into_parts() -> None:
    table = spans(*torch_step(100), *torch_step(110), *torch_step(120))
    steps = derive_steps(table)
    assert (steps // MS).tolist() == [[100, 110], [110, 120], [120, 130]]
    parts = split_steps(table, steps, table.iloc[0:0])
    assert parts["data"] == pytest.approx([0.002] * 3)
    assert parts["forward"] == pytest.approx([0.003] * 3)  # up to the backward, less data
    assert parts["backward"] == pytest.approx([0.004] * 3)
    assert parts["optimizer"] == pytest.approx([0.001] * 3)
    assert parts["other"] == pytest.approx([0.0] * 3)


def test_a_sync_after_the_update_belongs_to_the_next_step() -> None:
    rows = torch_step(0) + torch_step(20)
    syncs = spans(("sync", "Tensor.item", 10, 15, {"device": "cuda"}))
    table = pd.concat([spans(*rows), syncs], ignore_index=True)
    steps = derive_steps(table)
    parts = split_steps(table, steps, syncs)
    assert (steps // MS).tolist() == [[0, 10], [10, 30]]
    assert parts["sync"] == pytest.approx([0.0, 0.005])
    assert parts["forward"] == pytest.approx([0.003, 0.008])  # 10..25 up to the backward, less sync and data
    assert parts["other"] == pytest.approx([0.0, 0.0])


def test_a_validation_loop_in_eval_mode_is_cut_out_of_the_next_step() -> None:
    rows = torch_step(0) + [("hook", "mode", 12, 12, {"train": False}), ("hook", "mode", 50, 50, {"train": True})]
    rows += torch_step(51)
    steps = derive_steps(spans(*rows))
    assert (steps // MS).tolist() == [[0, 10], [50, 61]]


def test_marks_are_the_step_boundaries() -> None:
    rows = [("hook", "mark", t, t) for t in (10, 25, 45)] + torch_step(0)
    steps = derive_steps(spans(*rows))
    assert (steps // MS).tolist() == [[0, 10], [10, 25], [25, 45]]


def test_mlx_steps_end_with_the_eval_after_the_update() -> None:
    rows = []
    for t in (0, 30):
        rows += [("hook", "grad", t, t + 1), ("hook", "optimizer", t + 1, t + 2), ("sync", "mx.eval", t + 2, t + 20)]
    table = spans(*rows)
    steps = derive_steps(table)
    assert (steps // MS).tolist() == [[0, 20], [20, 50]]
    parts = split_steps(table, steps, table[table["kind"] == "sync"])
    assert parts["sync"] == pytest.approx([0.018, 0.018])
    assert parts["forward"] == pytest.approx([0.001, 0.001])  # the value_and_grad call: graph building


def test_lazy_mlx_steps_end_at_the_update_and_the_eval_comes_after() -> None:
    rows = [("hook", "optimizer", t, t + 1) for t in range(0, 50, 5)] + [("sync", "mx.eval", 60, 400)]
    steps = derive_steps(spans(*rows))
    assert len(steps) == 10
    assert (steps[:-1, 1] // MS).tolist() == [1, 6, 11, 16, 21, 26, 31, 36, 41]  # graph building only
    assert int(steps[-1, 1]) == 400 * MS  # the eval that computes them all ends the last step


def test_no_hooks_no_steps() -> None:
    assert derive_steps(spans(("epoch", "epoch 0", 0, 10))).shape == (0, 2)
    assert derive_steps(pd.DataFrame()).shape == (0, 2)


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        ([1.0] * 4, 0),  # too few steps to tell
        ([1.0] * 20, 1),  # even steps: only the first
        ([90.0] + [0.01] * 50, 1),  # a 90 s compile (MLX's first CUDA step)
        ([5.0, 3.0, 0.9, 1.1] + [1.0] * 40, 2),  # warm-up that settles by the third step
        ([1.0] * 30 + [50.0] + [1.0] * 30, 1),  # a slow step mid-run is steady state, not warm-up
    ],
)
def test_warmup_count(durations: list[float], expected: int) -> None:
    assert warmup_count(np.array(durations)) == expected


# -- the hooks on real frameworks -----------------------------------------------------------------

torch = pytest.importorskip("torch")


def _hooks() -> StepHooks:
    hooks = StepHooks(SpanRecorder())
    hooks.install(lazy=False)
    return hooks


def test_torch_hooks_record_fetches_backward_optimizer_and_mode() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    hooks = _hooks()
    try:
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = DataLoader(TensorDataset(torch.randn(12, 4), torch.randint(0, 2, (12,))), batch_size=4)
        model.train()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
    finally:
        info = hooks.summary()
        hooks.remove()
    names = [r[1] for r in hooks.recorder.rows]
    assert names.count("data") == 3 and names.count("backward") == 3 and names.count("optimizer") == 3
    assert names.count("loader") == 1
    loader_row = next(r for r in hooks.recorder.rows if r[1] == "loader")
    assert loader_row[7] == {"num_workers": 0, "batch_size": 4, "pin_memory": False}
    assert [r[7] for r in hooks.recorder.rows if r[1] == "mode"] == [{"train": True}, {"train": False}]
    assert info["calls"] == {"loader": 1, "data": 3, "backward": 3, "optimizer": 3, "mode": 2, "first_forward": 1}
    # everything put back
    assert torch.Tensor.backward.__module__ == "torch._tensor" and not hasattr(torch.Tensor.backward, "_cnnprof_hook")
    assert not hasattr(torch.nn.Module.train, "_cnnprof_hook")
    assert info["not_hooked"] == {}


def test_record_steps_adds_steps_with_their_split_and_the_setup() -> None:
    rec = SpanRecorder()
    hooks = StepHooks(rec)
    hooks.install(lazy=False)
    t0 = rec.rows[0][2] if rec.rows else 0
    try:
        w = torch.ones(3, requires_grad=True)
        opt = torch.optim.Adam([w])
        for _ in range(4):
            (w * w).sum().backward()
            opt.step()
    finally:
        hooks.remove()
    t0 = min(r[2] for r in rec.rows) - 1000
    derived, info = step_rows(rec.rows, t0)
    assert info == {"steps": 4, "eval_phases": 0}
    steps = [r for r in derived if r[0] == "step"]
    (setup,) = [r for r in derived if r[0] == "setup"]
    assert len(steps) == 4 and setup[3] == steps[0][2]
    assert all(set(r[7]) == {"data_s", "forward_s", "backward_s", "optimizer_s", "sync_s", "other_s"} for r in steps)
    assert all(r[7]["backward_s"] > 0 and r[7]["optimizer_s"] > 0 for r in steps)


def test_mlx_hooks_see_value_and_grad_update_and_a_compiled_training_step() -> None:
    mx = pytest.importorskip("mlx.core")
    nn = pytest.importorskip("mlx.nn")
    optim = pytest.importorskip("mlx.optimizers")
    hooks = _hooks()
    try:
        model = nn.Linear(4, 2)
        opt = optim.SGD(learning_rate=0.1)

        def loss_fn(m: nn.Module, x: mx.array) -> mx.array:
            return (m(x) ** 2).mean()

        grad_fn = nn.value_and_grad(model, loss_fn)
        x = mx.ones((8, 4))
        for _ in range(2):  # eager steps
            _, grads = grad_fn(model, x)
            opt.update(model, grads)
            mx.eval(model.parameters())

        state = [model.state, opt.state]

        def step(x: mx.array) -> mx.array:
            loss, grads = grad_fn(model, x)
            opt.update(model, grads)
            return loss

        compiled = mx.compile(step, inputs=state, outputs=state)
        for _ in range(3):
            mx.eval(compiled(x))
        mx.async_eval(compiled(x))  # a fourth step, evaluated without waiting
        mx.eval(model.parameters())
        inference = mx.compile(lambda a: a * 2)
        mx.eval(inference(x))  # compiled, but no optimizer update: not a training step
    finally:
        hooks.remove()
    names = [r[1] for r in hooks.recorder.rows]
    assert names.count("compiled") == 4  # every call of the training step, none of the other
    assert names.count("async_eval") == 1
    assert names.count("grad") >= 2 and names.count("optimizer") >= 2
    assert not hasattr(mx.compile, "_cnnprof_hook") and not hasattr(nn.value_and_grad, "_cnnprof_hook")
    assert not hasattr(mx.async_eval, "_cnnprof_hook")


STUB = """
import sys, types
nn = types.ModuleType("mlx.nn")          # a stub: no value_and_grad
core = types.ModuleType("mlx.core")      # no compile, no async_eval
pkg = types.ModuleType("mlx"); pkg.nn, pkg.core = nn, core
sys.modules.update({"mlx": pkg, "mlx.nn": nn, "mlx.core": core})
from cnnprof.profiler.spans import SpanRecorder
from cnnprof.profiler.steps import StepHooks
h = StepHooks(SpanRecorder())
h.install()
import mlx.nn, mlx.core
print(sorted(h.summary()["not_hooked"]))
h.remove()
print("ok")
"""


def test_hooks_never_raise_into_a_stub_module() -> None:
    out = subprocess.run([sys.executable, "-c", STUB], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "['mx.async_eval', 'mx.compile', 'nn.value_and_grad']" and lines[-1] == "ok"


def test_a_validation_loop_becomes_an_eval_mode_phase() -> None:
    rec = SpanRecorder()
    rows = [("hook", "data", 0, 2), ("hook", "backward", 5, 9), ("hook", "optimizer", 9, 10),
            ("hook", "mode", 12, 12, {"train": False}), ("hook", "mode", 50, 50, {"train": True}),
            ("hook", "data", 51, 53), ("hook", "backward", 55, 59), ("hook", "optimizer", 59, 60)]
    for kind, name, start, end, *attrs in rows:
        rec.rows.append((kind, name, start * MS, end * MS, None, None, None, attrs[0] if attrs else None))
    derived, info = step_rows(rec.rows, 0)
    assert info == {"steps": 2, "eval_phases": 1}
    (phase,) = [r for r in derived if r[0] == "phase"]
    assert (phase[1], phase[2], phase[3]) == ("eval mode", 12 * MS, 50 * MS)


def test_a_model_compiled_before_the_first_step_is_not_recompiled_by_the_hooks() -> None:
    """Dynamo guards on the global forward hooks a compiled model saw; removing them at the
    first optimizer step recompiled it ("len(...global_forward_hooks) != 1"). Where Dynamo
    compiled a frame they stay. Dynamo only (backend="eager"): no compiler needed."""
    import torch
    import torch._dynamo.utils as dynamo_utils

    from cnnprof.profiler.spans import SpanRecorder
    from cnnprof.profiler.steps import StepHooks

    torch._dynamo.reset()
    dynamo_utils.clear_compilation_metrics()
    hooks = StepHooks(SpanRecorder())
    hooks.install(lazy=False)
    try:
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        compiled = torch.compile(model, backend="eager")
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with warnings.catch_warnings(record=True) as caught:
            for _ in range(4):
                loss = compiled(torch.randn(8, 4)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        reasons = [m.recompile_reason for m in dynamo_utils.get_compilation_metrics()]
    finally:
        hooks.remove()
        torch._dynamo.reset()
    assert reasons == [None]  # one compile, no recompile
    # torch's warning about global hooks on torch.compile(module) is cnnprof's doing: not shown
    assert not [w for w in caught if "global hooks" in str(w.message)]
