"""A damaged or hand-edited run directory: one line or a note, never a traceback; and what the
run itself writes is strict JSON with printable names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cnnprof.cli import main
from cnnprof.profiler.session import RunSession, SessionOptions
from cnnprof.profiler.stacks import StackObserver
from cnnprof.traces import schema
from cnnprof.traces.reader import RunData


def _opts(root: Path) -> SessionOptions:
    return SessionOptions(out_root=root, kind="script", label="damage", argv=[])


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    observer = StackObserver("sampler", interval_ms=1.0)
    with RunSession(_opts(tmp_path_factory.mktemp("runs")), [observer]) as session:
        while observer._sampler is not None and observer._sampler.sample_count < 20:
            sum(i * i for i in range(100))
    RunData(session.run_dir)  # the first reader builds its tables: the copies damage those
    return session.run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    import shutil

    return shutil.copytree(run_dir, tmp_path / "copy")


@pytest.mark.parametrize(
    ("field", "value"),
    [("config", []), ("t0_perf_ns", "12"), ("schema_version", "1"), ("telemetry", "x"), ("status", 3),
     ("summary", None), ("losses", {})],
)
@pytest.mark.parametrize("command", ["diagnose", "report", "export"])
def test_a_field_of_the_wrong_type_is_one_line(
    sampled_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, command: str, field: str, value: object
) -> None:
    run_dir = _copy(sampled_run, tmp_path)
    meta = json.loads((run_dir / schema.RUN_JSON).read_text())
    meta[field] = value
    (run_dir / schema.RUN_JSON).write_text(json.dumps(meta))
    extra = {"export": ["--format", "chrome", "-o", str(tmp_path / "t.json")], "report": [], "diagnose": []}[command]
    assert main([command, str(run_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("cnnprof: error:")]
    assert field in line and ("corrupt" in line or "upgrade" in line)


@pytest.mark.parametrize(
    "stacks",
    [[], {"frames": "x", "stacks": []}, {"frames": [], "stacks": [[5]]}, {"frames": [{"file": "a"}], "stacks": []},
     {"frames": [], "stacks": []}],  # the last: well formed, but the samples name stacks it lacks
)
def test_a_stacks_json_of_the_wrong_shape_is_a_note(
    sampled_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, stacks: object
) -> None:
    run_dir = _copy(sampled_run, tmp_path)
    (run_dir / schema.STACKS).write_text(json.dumps(stacks))
    run = RunData(run_dir)
    assert run.samples.empty and run.stacks == {"frames": [], "stacks": []}
    assert any("wrong shape" in note for note in run.notes)
    assert main(["diagnose", str(run_dir)]) == 0
    assert main(["report", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "wrong shape" in err


def test_escape_bytes_in_a_code_file_name_are_written_out(sampled_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(sampled_run, tmp_path)
    stacks = json.loads((run_dir / schema.STACKS).read_text())
    stacks["frames"][0]["file"] = "/tmp/\x1b]0;owned\x07\x1b[2Jevil.py"
    (run_dir / schema.STACKS).write_text(json.dumps(stacks))
    frame = RunData(run_dir).stacks["frames"][0]
    assert frame["file"] == "/tmp/\\x1b]0;owned\\x07\\x1b[2Jevil.py"


def test_run_json_is_strict_json_with_nulls_for_non_finite_numbers(tmp_path: Path) -> None:
    with RunSession(_opts(tmp_path)) as session:
        session.add_epoch_metrics(
            {"epoch": 1, "train_loss": math.nan, "train_acc": 0.1, "val_loss": math.inf, "val_acc": 0.1,
             "epoch_s": 1.0, "images_per_s": 10.0}
        )
    text = (session.run_dir / schema.RUN_JSON).read_text()

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in run.json")

    meta = json.loads(text, parse_constant=refuse)
    assert meta["summary"]["final_train_loss"] is None and meta["summary"]["final_val_loss"] is None
    assert any("summary.final_train_loss" in loss for loss in meta["losses"])
