"""Every error a user can cause: one line, a non-zero exit, no traceback, no run directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cnnprof.cli import main


def _error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("cnnprof: error:")]


def test_unknown_backend(capsys, runs_dir: Path):
    assert main(["run", "--backend", "tpu_v9", "--out", str(runs_dir)]) == 2
    (line,) = _error_lines(capsys)
    assert "unknown backend 'tpu_v9'" in line and "torch_cpu" in line
    assert not runs_dir.exists()


def test_unavailable_backend_names_the_reason_and_fix(capsys, runs_dir: Path):
    assert main(["run", "--backend", "torch_mps", "--out", str(runs_dir)]) == 2
    (line,) = _error_lines(capsys)
    assert "torch_mps is not available" in line and "macOS" in line and "fix:" in line
    assert not runs_dir.exists()


def test_missing_dataset_offline(capsys, runs_dir: Path, tmp_path: Path):
    code = main(["run", "--backend", "torch_cpu", "--dataset", "mnist", "--offline",
                 "--data-dir", str(tmp_path / "data"), "--out", str(runs_dir)])
    assert code == 2
    (line,) = _error_lines(capsys)
    assert "train-images-idx3-ubyte" in line and "synthetic" in line
    assert not runs_dir.exists()


def test_unwritable_out(capsys, tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    code = main(["run", "--backend", "torch_cpu", "--train-images", "512", "--out", str(blocker / "runs")])
    assert code == 2
    (line,) = _error_lines(capsys)
    assert "--out" in line


def test_lazy_sync_is_mlx_only(capsys, runs_dir: Path):
    assert main(["run", "--backend", "torch_cpu", "--sync", "lazy", "--out", str(runs_dir)]) == 2
    (line,) = _error_lines(capsys)
    assert "MLX only" in line


def test_the_installed_command_prints_one_line_and_exits_non_zero(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "cnnprof.cli", "run", "--backend", "nope", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "cnnprof: error: unknown backend 'nope'; choose one of: auto, torch_cpu, torch_mps, torch_cuda, "
        "mlx_gpu, mlx_cpu"
    ]


_OUT_OF_RANGE = [
    ("--profile-interval-ms", "0.00001"),
    ("--profile-interval-ms", "nan"),
    ("--epochs", "0"),
    ("--batch-size", "-1"),
    ("--lr", "inf"),
    ("--lr", "nan"),
    ("--seed", "-1"),
    ("--single-inference", "-5"),
    ("--train-images", "0"),
]


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [("run", *case) for case in _OUT_OF_RANGE]
    + [("bench", *case) for case in _OUT_OF_RANGE]
    + [("profile", "--profile-interval-ms", "0.00001")],  # profile has only the observation options
)
def test_numeric_options_out_of_range_are_one_line(capsys, runs_dir: Path, command: str, option: str, value: str):
    args = [command, option, value, "--out", str(runs_dir)]
    args += {"profile": ["--", __file__], "bench": ["--backends", "torch_cpu"], "run": []}[command]
    assert main(args) == 2
    (line,) = _error_lines(capsys)
    assert option in line and "out of range" in line
    assert not runs_dir.exists()
