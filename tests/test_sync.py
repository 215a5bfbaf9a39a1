"""The sync hooks: originals restored, callers right, nested calls once, mlx and lazy install.

No GPU here: CUDA paths are driven by a tensor subclass that reports `is_cuda` and by a fake
`torch.cuda.synchronize`, which the hooks wrap exactly like the real one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from cnnprof.profiler.session import RunSession, SessionOptions  # noqa: E402
from cnnprof.profiler.spans import SpanRecorder  # noqa: E402
from cnnprof.profiler.sync import (  # noqa: E402
    MLX_ARRAY_METHODS,
    TORCH_TENSOR_METHODS,
    SyncHookObserver,
    SyncHooks,
)

REPO = Path(__file__).resolve().parents[1]


def _line_after() -> int:
    """The line number of the caller's next line."""
    return sys._getframe(1).f_lineno + 1


def _syncs(rec: SpanRecorder) -> list[tuple[Any, ...]]:
    return [r for r in rec.rows if r[0] == "sync"]


def _hook_points() -> list[tuple[Any, str]]:
    points: list[tuple[Any, str]] = [(torch.Tensor, a) for a in TORCH_TENSOR_METHODS]
    points += [(torch.cuda, "synchronize"), (torch.mps, "synchronize")]
    mx = sys.modules.get("mlx.core")
    if mx is not None:
        points += [(mx, "eval"), (mx, "synchronize")] + [(mx.array, a) for a in MLX_ARRAY_METHODS]
    return points


def _snapshot() -> list[tuple[Any, Any]]:
    out = []
    for owner, attr in _hook_points():
        own = owner.__dict__.get(attr, "<absent>") if isinstance(owner, type) else None
        out.append((getattr(owner, attr), own))
    return out


@pytest.fixture
def hooks():
    rec = SpanRecorder()
    h = SyncHooks(rec)
    h.install(lazy=False)
    try:
        yield h
    finally:
        h.remove()


def test_originals_are_restored_by_identity() -> None:
    pytest.importorskip("mlx.core")
    before = _snapshot()
    h = SyncHooks(SpanRecorder())
    h.install(lazy=False)
    during = _snapshot()
    assert h.not_hooked == {}, h.not_hooked  # every listed point is patchable here (mlx 0.32 included)
    assert all(b[0] is not d[0] for b, d in zip(before, during, strict=True))
    h.remove()
    after = _snapshot()
    for (owner, attr), (b_value, b_own), (a_value, a_own) in zip(_hook_points(), before, after, strict=True):
        assert a_value is b_value, f"{owner}.{attr} not restored"
        assert a_own is b_own, f"{owner}.{attr}: own attribute changed"
    # and the restored methods still work
    assert torch.ones(()).item() == 1.0 and bool(torch.ones(())) and int(torch.ones(())) == 1


class OnDevice(torch.Tensor):
    """A CPU tensor that says it lives on CUDA (torch's own `__torch_function__`)."""

    @property
    def is_cuda(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_cpu(self) -> bool:  # type: ignore[override]
        return False


def _cuda(t: torch.Tensor) -> torch.Tensor:
    return t.as_subclass(OnDevice)


def test_cpu_tensor_reads_are_not_syncs(hooks: SyncHooks) -> None:
    t = torch.ones(())
    t.item(), t.tolist(), t.cpu(), t.numpy(), bool(t), float(t), int(t), repr(t)
    assert _syncs(hooks.recorder) == []  # nothing to wait for on the CPU: nothing recorded


def test_device_item_is_recorded_with_its_caller(hooks: SyncHooks) -> None:
    x = _cuda(torch.arange(4.0))
    line = _line_after()
    value = x.sum().item()
    assert value == 6.0
    (row,) = _syncs(hooks.recorder)
    kind, name, start, end, _epoch, _batch, caller, attrs = row
    assert name == "Tensor.item"
    assert caller == f"{__file__}:{line}"
    assert attrs == {"device": "cuda"}
    assert 0 <= start <= end


def test_epoch_and_batch_come_from_the_recorder(hooks: SyncHooks) -> None:
    hooks.recorder.epoch, hooks.recorder.batch = 3, 7
    _cuda(torch.ones(())).tolist()
    (row,) = _syncs(hooks.recorder)
    assert row[1] == "Tensor.tolist" and row[4:6] == (3, 7)


def test_all_torch_tensor_points_record(hooks: SyncHooks) -> None:
    for attr in TORCH_TENSOR_METHODS:
        t = _cuda(torch.ones(()))
        getattr(t, attr)()
    names = [r[1] for r in _syncs(hooks.recorder)]
    assert names == [f"Tensor.{a}" for a in TORCH_TENSOR_METHODS]
    assert {r[7]["device"] for r in _syncs(hooks.recorder)} == {"cuda"}


def test_printing_a_tensor_is_one_record(hooks: SyncHooks) -> None:
    line = _line_after()
    text = repr(_cuda(torch.arange(6.0).reshape(2, 3)))  # torch's formatter calls .item()/.tolist() inside
    assert "[[0., 1., 2.]," in text
    (row,) = _syncs(hooks.recorder)
    assert row[1] == "Tensor.__repr__" and row[6] == f"{__file__}:{line}"


def _fake_torch_function(subdir: str) -> Any:
    """A function whose code claims to live in torch/<subdir>/ (as if torch called .item())."""
    namespace: dict[str, Any] = {}
    path = str(Path(torch.__file__).parent / subdir / "cnnprof_test_fake.py")
    exec(compile("def call(t):\n    return t.item()\n", path, "exec"), namespace)
    return namespace["call"]


def test_library_frames_are_skipped_and_compiler_frames_drop_the_record(hooks: SyncHooks) -> None:
    line = _line_after()
    _fake_torch_function("optim")(_cuda(torch.ones(())))  # torch library code: the caller is this line
    _fake_torch_function("_dynamo")(_cuda(torch.ones(())))  # torch.compile's machinery: not a training sync
    (row,) = _syncs(hooks.recorder)
    assert row[6] == f"{__file__}:{line}"


def test_numpy_conversion_records_once(hooks: SyncHooks) -> None:
    import numpy as np

    line = _line_after()
    np.asarray(_cuda(torch.ones(3)))  # torch's Python __array__ calls the hooked .numpy()
    (row,) = _syncs(hooks.recorder)
    assert row[1] == "Tensor.numpy" and row[6] == f"{__file__}:{line}"


class FakeCuda(OnDevice):
    """A CPU tensor that says it lives on CUDA, with a `__torch_function__` of its own: every
    method call goes through it, which calls the *patched* `Tensor.item` again: a real nested call."""

    seen: list[Any] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[override]
        cls.seen.append(func)
        return super().__torch_function__(func, types, args, kwargs)


def test_nested_call_is_recorded_once_with_the_device(hooks: SyncHooks) -> None:
    t = torch.ones(()).as_subclass(FakeCuda)
    FakeCuda.seen.clear()
    line = _line_after()
    assert t.item() == 1.0
    assert any(getattr(f, "_cnnprof_hook", None) == "Tensor.item" for f in FakeCuda.seen), (
        "the subclass path should re-enter the hooked method"
    )
    rows = _syncs(hooks.recorder)
    assert len(rows) == 1
    assert rows[0][1] == "Tensor.item"
    assert rows[0][7] == {"device": "cuda"}
    assert rows[0][6] == f"{__file__}:{line}"


def test_failed_call_records_nothing_and_resets_the_guard(hooks: SyncHooks) -> None:
    with pytest.raises(RuntimeError):
        _cuda(torch.ones(2)).item()  # more than one element
    assert _syncs(hooks.recorder) == []
    _cuda(torch.ones(())).item()
    assert len(_syncs(hooks.recorder)) == 1


def test_cuda_synchronize_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_synchronize(device: Any = None) -> None:  # stands in for the real CUDA wait
        calls.append(device)
        time.sleep(0.002)

    monkeypatch.setattr(torch.cuda, "synchronize", fake_synchronize)
    rec = SpanRecorder()
    h = SyncHooks(rec)
    h.install(lazy=False)
    try:
        line = _line_after()
        torch.cuda.synchronize("cuda:0")
    finally:
        h.remove()
    assert torch.cuda.synchronize is fake_synchronize
    assert calls == ["cuda:0"]
    (row,) = _syncs(rec)
    assert row[1] == "torch.cuda.synchronize" and row[7] == {"device": "cuda"}
    assert row[3] - row[2] >= 2_000_000
    assert row[6] == f"{__file__}:{line}"


def test_mlx_eval_is_recorded_and_cpu_array_reads_are_not(hooks: SyncHooks) -> None:
    mx = pytest.importorskip("mlx.core")
    if "mlx" not in hooks._installed:  # mlx imported after the fixture's install
        hooks.install(lazy=False)
    if mx.default_device().type == mx.gpu:
        pytest.skip("written for mlx's CPU backend (the one CI has)")
    a = mx.arange(4) * 2
    line = _line_after()
    mx.eval(a)
    assert a.sum().item() == 12  # a CPU read: not a sync
    assert a.tolist() == [0, 2, 4, 6]
    rows = _syncs(hooks.recorder)
    # The eval is the computation on the CPU: recorded (it ends an MLX step), with its device.
    assert [r[1] for r in rows] == ["mx.eval"]
    assert rows[0][6] == f"{__file__}:{line}"
    assert rows[0][7] == {"device": "cpu"}


STUB = """
import sys, types
core = types.ModuleType("mlx.core")
core.eval = lambda *a: None          # a test stub: no default_device, no array type
pkg = types.ModuleType("mlx"); pkg.core = core
sys.modules["mlx"], sys.modules["mlx.core"] = pkg, core
from cnnprof.profiler.spans import SpanRecorder
from cnnprof.profiler.sync import SyncHooks
h = SyncHooks(SpanRecorder())
h.install()
import mlx.core as mx
mx.eval()
print(sorted(h.not_hooked))
h.remove()
print("ok")
"""


def test_a_stub_framework_module_is_left_alone() -> None:
    out = subprocess.run([sys.executable, "-c", STUB], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "mlx.core" in out.stdout.splitlines()[0]  # why it is not hooked is noted
    assert out.stdout.splitlines()[-1] == "ok"


def test_observer_sets_the_flag_and_summarises(tmp_path: Path) -> None:
    observer = SyncHookObserver()
    opts = SessionOptions(out_root=tmp_path, kind="script", label="t", argv=[])
    with RunSession(opts, [observer]) as session:
        assert session.recorder.sync_hooked
        assert torch.Tensor.item is not torch._C.TensorBase.item
        _cuda(torch.ones(())).item()
        torch.ones(()).item()  # a CPU read: not counted
    assert not session.recorder.sync_hooked
    assert torch.Tensor.item is torch._C.TensorBase.item
    meta = json.loads((session.run_dir / "run.json").read_text())
    assert meta["sync_hooks"]["calls"] == {"Tensor.item": 1}
    assert meta["sync_hooks"]["devices"] == {"cuda": 1}
    assert "Tensor.item" in meta["sync_hooks"]["hooked"]


LAZY = """
import sys
from cnnprof.profiler.spans import SpanRecorder
from cnnprof.profiler.sync import SyncHooks
assert "torch" not in sys.modules and "mlx.core" not in sys.modules
rec = SpanRecorder()
h = SyncHooks(rec)
h.install()
import torch
assert getattr(torch.Tensor.item, "_cnnprof_hook", None) == "Tensor.item"
torch.ones(()).as_subclass(type("C", (torch.Tensor,), {"is_cpu": property(lambda s: False)})).item()
import mlx.core as mx
mx.eval(mx.ones(3))
print(sorted(r[1] for r in rec.rows))
print(type(torch.__spec__.loader).__name__, type(torch.__loader__).__name__)
h.remove()
assert torch.Tensor.item is torch._C.TensorBase.item and "_cnnprof_hook" not in dir(mx.eval)
print("ok")
"""


def test_hooks_install_when_the_framework_is_imported_later() -> None:
    pytest.importorskip("mlx.core")
    out = subprocess.run([sys.executable, "-c", LAZY], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "['Tensor.item', 'mx.eval']"
    assert lines[1] == "SourceFileLoader SourceFileLoader"  # the real loader is put back
    assert lines[-1] == "ok"


def test_library_code_by_path_whatever_the_import_order(hooks: SyncHooks, tmp_path: Path) -> None:
    """A progress bar imported after torch (tqdm's std.py in site-packages) is library code: the
    sync inside it is charged to the user's line that called it."""
    namespace: dict[str, Any] = {}
    fake = str(tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "tqdm" / "std.py")
    exec(compile("def update(t):\n    return t.item()\n", fake, "exec"), namespace)
    line = _line_after()
    namespace["update"](_cuda(torch.ones(())))
    (row,) = _syncs(hooks.recorder)
    assert row[6] == f"{__file__}:{line}"
