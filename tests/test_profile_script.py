"""`cnnprof profile`'s engine: the user's script run in-process under the stack profiler and the
sync hooks, then diagnosed; and `run_user_code` behaving like `python SCRIPT ARGS`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from cnnprof.errors import UserError
from cnnprof.profiler.script import run_user_code, user_traceback
from cnnprof.profiler.session import RunSession, SessionOptions
from cnnprof.profiler.stacks import StackObserver
from cnnprof.profiler.steps import StepHookObserver
from cnnprof.profiler.sync import SyncHookObserver
from cnnprof.reports.diagnosis import diagnose
from cnnprof.traces import schema
from cnnprof.traces.reader import RunData

SCRIPTS = Path(__file__).resolve().parent / "scripts"
TRAIN = SCRIPTS / "train_torch.py"
RAISES = SCRIPTS / "raises.py"
SHOW = SCRIPTS / "show_argv.py"


def _line_of(path: Path, marker: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if marker in line)


def _session(tmp_path: Path, label: str) -> RunSession:
    opts = SessionOptions(out_root=tmp_path, kind="script", label=label, argv=["cnnprof", "profile", "--", label])
    return RunSession(opts, [StackObserver(interval_ms=1.0), SyncHookObserver(), StepHookObserver()])


@pytest.fixture
def torch_threads():
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)  # the script sets 1 thread in this process


@pytest.mark.slow
def test_profile_torch_script_end_to_end(tmp_path: Path, torch_threads: None, capsys: pytest.CaptureFixture) -> None:
    with _session(tmp_path, "train_torch.py") as session:
        code = run_user_code(str(TRAIN), ["--epochs", "2", "--samples", "256"], module=False)
    assert code == 0
    assert "epoch 1: loss" in capsys.readouterr().out
    run = RunData(session.run_dir)
    assert run.meta["status"] == "complete"

    # the steps: one per optimizer step (256 samples / batch 32, 2 epochs), each with its batch
    # fetch, backward and optimizer parts; the setup before the first; the per-batch .item() of a
    # CPU tensor is no sync (nothing to wait for) and is not recorded
    spans = run.spans
    steps = spans[spans["kind"] == "step"].sort_values("start_ns")
    assert len(steps) == 2 * 8
    parts = [json.loads(a) for a in steps["attrs"]]
    assert all(p["data_s"] > 0 and p["backward_s"] > 0 and p["optimizer_s"] > 0 for p in parts)
    assert (steps["start_ns"].to_numpy()[1:] >= steps["end_ns"].to_numpy()[:-1]).all()  # in order, no overlap
    (setup,) = spans[spans["kind"] == "setup"].itertuples()
    assert setup.end_ns == steps["start_ns"].iloc[0]
    assert spans[spans["kind"] == "sync"].empty
    assert run.meta["step_hooks"]["steps"] == 16

    result = diagnose(run)
    ids = [f.id for f in result.findings]
    assert not [i for i in ids if i.startswith("sync")]  # a CPU run: no syncs at all
    assert result.verdict.id == "input-bound"
    assert result.verdict.split["data"] > 0.5

    (inp,) = [f for f in result.findings if f.id == "input-bound"]
    assert "__getitem__" in inp.claim
    assert inp.call_sites[0].file == str(TRAIN)
    assert inp.call_sites[0].line == _line_of(TRAIN, "def __getitem__")


def test_failing_script_leaves_a_failed_run(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom") as info, _session(tmp_path, "raises.py") as session:
        run_user_code(str(RAISES), [], module=False)
    meta = json.loads((session.run_dir / schema.RUN_JSON).read_text())
    assert meta["status"] == "failed"
    assert "boom from the profiled script" in meta["error"]
    run = RunData(session.run_dir)
    assert (run.spans["kind"] == "step").sum() == 3  # the steps before the failure are kept
    assert (session.run_dir / schema.SAMPLES).exists()
    text = user_traceback(info.value)
    assert text.startswith("Traceback (most recent call last):")
    assert f'File "{RAISES}"' in text and "train_step" in text
    assert "runpy" not in text and "script.py" not in text
    assert text.rstrip().endswith("RuntimeError: boom from the profiled script")


def test_script_sees_what_python_would_show(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv, path = sys.argv[:], sys.path[:]
    main = sys.modules["__main__"]
    assert run_user_code(str(SHOW), ["a", "--b"], module=False) == 0
    seen = json.loads(capsys.readouterr().out)
    assert seen["name"] == "__main__"
    assert seen["argv"] == [str(SHOW), "a", "--b"]
    assert seen["path0"] == str(SCRIPTS)
    assert seen["file"] == str(SHOW) and os.path.isabs(seen["file"])
    assert sys.argv == argv and sys.path == path and sys.modules["__main__"] is main


def test_relative_script_path(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(SCRIPTS.parent)
    assert run_user_code("scripts/show_argv.py", [], module=False) == 0
    seen = json.loads(capsys.readouterr().out)
    # python keeps argv[0] as typed; runpy sets it to the path it runs, which we make absolute so
    # that __file__ and the code's file names are absolute, as python >= 3.9 makes them
    assert seen["argv"] == [str(SHOW)]
    assert seen["file"] == str(SHOW)
    assert seen["path0"] == str(SCRIPTS)


@pytest.mark.parametrize(("args", "code", "stderr"), [(["exit", "3"], 3, ""), (["exit", "bad"], 1, "bad\n")])
def test_exit_codes(args: list[str], code: int, stderr: str, capsys: pytest.CaptureFixture) -> None:
    assert run_user_code(str(SHOW), args, module=False) == code
    assert capsys.readouterr().err == stderr


def test_module_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "mytool.py").write_text("import sys\nprint('tool', __name__, sys.argv[1:])\nsys.exit(4)\n")
    monkeypatch.chdir(tmp_path)
    path = sys.path[:]
    assert run_user_code("mytool", ["x", "y"], module=True) == 4
    assert capsys.readouterr().out == "tool __main__ ['x', 'y']\n"
    assert sys.path == path
    assert "mytool" not in sys.modules or sys.modules["mytool"].__name__ != "__main__"


def test_missing_script_or_module_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such script"):
        run_user_code(str(tmp_path / "nope.py"), [], module=False)
    with pytest.raises(UserError, match="is a directory"):
        run_user_code(str(tmp_path), [], module=False)
    with pytest.raises(UserError, match="no such module"):
        run_user_code("no_such_module_cnnprof_test", [], module=True)
    with pytest.raises(UserError, match="no such module"):
        run_user_code("no_such_pkg_cnnprof.sub", [], module=True)


def test_cli_profile_and_diagnose(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cnnprof.cli import main

    out = tmp_path / "runs"
    assert main(["profile", "--telemetry", "none", "--no-report", "--out", str(out), "--", str(RAISES)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert "RuntimeError: boom from the profiled script" in err and "runpy" not in err
    (run_dir,) = out.iterdir()
    assert json.loads((run_dir / schema.RUN_JSON).read_text())["status"] == "failed"

    assert main(["diagnose", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["findings"] == []  # three tiny steps on the CPU: nothing to find
    assert result["verdict"]["id"] in ("compute-bound", "setup-heavy")

    assert main(["profile", "--out", str(tmp_path / "none"), "--", str(tmp_path / "missing.py")]) == 2
    assert "no such script" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
