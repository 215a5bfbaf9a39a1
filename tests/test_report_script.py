"""The report of a user's own script (`cnnprof profile`): its name, argv, backend and device."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from helpers import only_run_dir
from report_runs import make_run

from cnnprof.profiler.backend_detect import detect_backend
from cnnprof.traces.reader import RunData

ROOT = Path(__file__).resolve().parents[1]


def _cards(html: str) -> dict[str, tuple[str, str]]:
    found = re.findall(
        r"<div class='card-title'>(.*?)</div><div class='card-value'>(.*?)</div><div class='card-sub'>(.*?)</div>",
        html,
    )
    return {title: (value, sub) for title, value, sub in found}


def _profile(tmp_path: Path, source: str, *args: str) -> Path:
    """`cnnprof profile` in a process of its own, as a user runs it: this one has imported torch
    and mlx for other tests, and a script's backend is told by what it imports."""
    script = tmp_path / "my_train.py"
    script.write_text(source)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "cnnprof.cli", "profile", "--telemetry", "none", "--out", str(out), "--", str(script)]
    subprocess.run([*cmd, *args], check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return only_run_dir(out)


def test_a_torch_script_report_names_the_script_backend_and_device(tmp_path: Path):
    run_dir = _profile(tmp_path, "import torch, sys\nx = torch.ones(3)\nprint(float(x.sum()), sys.argv[1:])\n",
                       "--lr", "0.1")
    record = RunData(run_dir).record
    assert record.script is not None and record.script.argv == ["--lr", "0.1"] and record.script.exit_code == 0
    assert (record.backend.name, record.backend.framework, record.backend.device) == ("torch_cpu", "torch", "cpu")
    assert record.backend.detected and record.backend.device_name
    cards = _cards((run_dir / "report.html").read_text())
    assert cards["script"][0] == "<span class='mono'>my_train.py</span>"
    assert cards["script"][1].endswith("my_train.py --lr 0.1")
    assert cards["backend"][0] == "torch_cpu" and "detected from the script" in cards["backend"][1]
    assert cards["device"][0] == record.backend.device_name
    assert "epochs" not in cards and "dataset" not in cards
    assert "<title>cnnprof: my_train.py / torch_cpu</title>" in (run_dir / "report.html").read_text()


def test_an_mlx_script_is_detected_as_mlx(tmp_path: Path):
    pytest.importorskip("mlx.core")
    run_dir = _profile(tmp_path, "import mlx.core as mx\nmx.set_default_device(mx.cpu)\nmx.eval(mx.ones(3) * 2)\n")
    backend = RunData(run_dir).record.backend
    assert (backend.name, backend.framework, backend.device) == ("mlx_cpu", "mlx", "cpu")


def test_a_script_without_a_framework_has_no_backend(tmp_path: Path):
    run_dir = _profile(tmp_path, "print(sum(range(10)))\n")
    assert RunData(run_dir).record.backend.name == ""
    assert _cards((run_dir / "report.html").read_text())["backend"][0] == "?"


def _sync(name: str, device: str) -> tuple[object, ...]:
    return ("sync", name, 0, 1, None, None, "x.py:1", {"device": device})


def test_detection_prefers_the_device_the_syncs_waited_on(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=bool)))
    rows = [_sync("Tensor.item", "cpu")] * 5 + [_sync("Tensor.item", "cuda")] * 2
    assert detect_backend(rows) == ("torch", "cuda")
    assert detect_backend([_sync("mx.eval", "gpu")]) == ("mlx", "gpu")
    assert detect_backend([_sync("Tensor.item", "cpu")]) == ("torch", "cpu")


def test_detection_without_syncs_reads_the_frameworks_state(monkeypatch: pytest.MonkeyPatch):
    cuda = types.SimpleNamespace(is_initialized=lambda: True)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert detect_backend([]) == ("torch", "cuda")
    monkeypatch.delitem(sys.modules, "torch")
    gpu = object()
    mx = types.SimpleNamespace(gpu=gpu, default_device=lambda: types.SimpleNamespace(type=gpu))
    monkeypatch.setitem(sys.modules, "mlx.core", mx)
    assert detect_backend([]) == ("mlx", "gpu")
    monkeypatch.delitem(sys.modules, "mlx.core")
    assert detect_backend([]) is None


def test_detection_prefers_the_framework_the_script_imported(monkeypatch: pytest.MonkeyPatch):
    gpu = object()
    mx = types.SimpleNamespace(gpu=gpu, default_device=lambda: types.SimpleNamespace(type=gpu))
    torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "mlx.core", mx)
    assert detect_backend([], imported_before={"torch"}) == ("mlx", "gpu")
    assert detect_backend([], imported_before={"mlx.core"}) == ("torch", "cpu")
    assert detect_backend([_sync("mx.eval", "cpu")], imported_before={"mlx.core"}) == ("mlx", "cpu")
    # On the CPU no torch read is a sync; the step hooks (a backward, a DataLoader) say torch trained.
    hooks = [("hook", name, 0, 1, None, None, None, None) for name in ("backward", "data", "backward")]
    assert detect_backend(hooks, imported_before={"torch", "mlx.core"}) == ("torch", "cpu")
    assert detect_backend([("hook", "grad", 0, 1, None, None, None, None)]) == ("mlx", "gpu")


def test_a_scripts_setup_steps_and_phases_are_in_the_phases_lane(tmp_path: Path):
    import pandas as pd

    from cnnprof.reports.timeline import build_timeline
    from cnnprof.traces import schema
    from cnnprof.traces.record import Script

    run = make_run(tmp_path / "run", epochs=1, script=Script(path="mine.py"), telemetry=(), samples=False)
    ms = 1_000_000
    extra = pd.DataFrame(
        {
            "kind": ["setup", "step", "step", "phase", "hook"],
            "name": ["setup", "train", "train", "eval", "optimizer"],
            "start_ns": [0, 10 * ms, 20 * ms, 30 * ms, 12 * ms],
            "end_ns": [10 * ms, 20 * ms, 30 * ms, 40 * ms, 13 * ms],
        }
    )
    spans = pd.concat([pd.read_parquet(run / schema.SPANS), extra], ignore_index=True)
    spans.to_parquet(run / schema.SPANS)
    traces = [t for t in build_timeline(RunData(run)).figure["data"] if t.get("meta") == "phases"]
    names = {t["name"]: len(t["x"]) for t in traces}
    assert names["setup"] == 1 and names["eval"] == 1 and names["step"] == 2
    hovers = [h for t in traces for h in t.get("hovertext") or []]
    assert any("(setup)" in h for h in hovers) and not any("(hook)" in h for h in hovers)  # raw hooks are not drawn
