"""`cnnprof profile`'s distributed options: wrong uses end in one line and leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnprof.cli import main

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--nproc-per-node", "2", "--nnodes", "2"], {}, "--nnodes > 1 needs --rdzv-endpoint"),
        (["--nproc-per-node", "0"], {}, "must be at least 1"),
        (["--nproc-per-node", "2"], {"RANK": "0", "WORLD_SIZE": "2"}, "under torchrun leave it out"),
    ],
)
def test_wrong_distributed_options_are_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv, env, message
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = main(["profile", *argv, "--telemetry", "none", "--out", str(tmp_path / "out"), "--", str(SCRIPT)])
    err = capfd.readouterr().err
    assert code != 0
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
