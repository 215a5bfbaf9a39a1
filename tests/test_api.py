"""The Python API: `with cnnprof.profile() as run:` writes a run directory of kind `block`."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from helpers import only_run_dir, read_meta

import cnnprof
from cnnprof.api import Profile, ProfileError
from cnnprof.reports.findings import VERDICTS, Finding

QUIET = {"telemetry": "none", "profiler": "none", "report": False, "show": False}


def _train(steps: int) -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        x, y = torch.randn(32, 16), torch.randint(0, 2, (32,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        cnnprof.step()


def _spans(run_dir: Path) -> pd.DataFrame:
    from cnnprof.traces.reader import RunData

    return RunData(run_dir).spans  # a run whose block raised is left unexplained: built on this read


def test_block_around_training_steps_writes_a_complete_run(runs_dir: Path) -> None:
    with cnnprof.profile(out=runs_dir, telemetry="procfs", profiler="sampler", show=False) as run:
        _train(6)
        with cnnprof.phase("eval"):
            sum(range(1000))
    assert run.run_dir == only_run_dir(runs_dir)
    meta = read_meta(run.run_dir)
    assert (meta["kind"], meta["status"], run.status) == ("block", "complete", "complete")
    assert meta["telemetry"]["sources"]["procfs"] == "ok"
    spans = _spans(run.run_dir)
    marks = spans[(spans["kind"] == "hook") & (spans["name"] == "mark")]
    assert len(marks) == 6
    assert marks["start_ns"].is_monotonic_increasing
    assert (marks["start_ns"] > 0).all() and (marks["end_ns"] <= meta["duration_ns"]).all()
    phase = spans[spans["kind"] == "phase"]
    assert phase["name"].tolist() == ["eval"] and (phase["end_ns"] > phase["start_ns"]).all()
    assert (run.run_dir / "samples.parquet").exists()
    steps = spans[spans["kind"] == "step"]
    assert len(steps) == 6  # one per marked step, derived at the end of the run
    split = json.loads(steps["attrs"].iloc[-1])
    assert {"data_s", "forward_s", "backward_s", "optimizer_s", "sync_s", "other_s"} <= set(split)
    assert split["backward_s"] > 0 and split["optimizer_s"] > 0  # the step hooks saw the training
    assert run.verdict.id in VERDICTS and run.verdict.split
    assert all(isinstance(f, Finding) for f in run.findings)
    assert run.report == run.run_dir / "report.html" and run.report.stat().st_size > 10_000


def test_exception_inside_the_block_saves_a_failed_run_and_propagates(runs_dir: Path) -> None:
    run = cnnprof.profile(out=runs_dir, **QUIET)
    with pytest.raises(ZeroDivisionError), run:
        cnnprof.step()
        1 / 0  # noqa: B018
    meta = read_meta(run.run_dir)
    assert meta["status"] == "failed" and "ZeroDivisionError" in meta["error"]
    spans = _spans(run.run_dir)
    assert (spans["name"] == "mark").sum() == 1  # the mark before the error is kept
    assert (spans["kind"] == "step").sum() == 1  # and the step it ends
    with pytest.raises(ProfileError, match="did not end normally"):
        run.findings  # noqa: B018
    with cnnprof.profile(out=runs_dir, **QUIET) as again:  # the failed block released the process
        pass
    assert again.status == "complete"


def test_nested_and_concurrent_blocks_are_refused(runs_dir: Path) -> None:
    with cnnprof.profile(out=runs_dir, **QUIET) as outer:
        with pytest.raises(ProfileError, match="already observing"), cnnprof.profile(out=runs_dir, **QUIET):
            pass
        errors: list[BaseException] = []

        def other_thread() -> None:
            try:
                with cnnprof.profile(out=runs_dir, **QUIET):
                    pass
            except ProfileError as exc:
                errors.append(exc)

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert len(errors) == 1 and str(outer.run_dir) in str(errors[0])
        cnnprof.step()
    assert outer.status == "complete"
    assert len(list(runs_dir.iterdir())) == 1  # the refused blocks made no run directory
    with pytest.raises(ProfileError, match="already run"), outer:
        pass


def test_decorator_makes_one_run_per_call(runs_dir: Path) -> None:
    @cnnprof.profile(out=runs_dir, label="fit", **QUIET)
    def fit(n: int) -> int:
        for _ in range(n):
            cnnprof.step()
        return n * 2

    assert fit.__name__ == "fit"
    assert fit(2) == 4 and fit(3) == 6
    runs = sorted(runs_dir.iterdir())
    assert len(runs) == 2 and all(r.name.endswith("fit") or "fit-" in r.name for r in runs)
    assert sorted(int((_spans(r)["name"] == "mark").sum()) for r in runs) == [2, 3]
    assert sorted(int((_spans(r)["kind"] == "step").sum()) for r in runs) == [2, 3]


def test_marks_outside_a_block_do_nothing() -> None:
    cnnprof.step()
    with cnnprof.phase("eval"):
        pass
    with pytest.raises(ProfileError, match="not started"):
        Profile().run_dir  # noqa: B018


def test_bad_options_fail_before_any_run_directory(runs_dir: Path) -> None:
    with pytest.raises(ProfileError, match="profiler="):
        cnnprof.profile(out=runs_dir, profiler="perf")
    with pytest.raises(cnnprof.api.UserError, match="nosuch"), cnnprof.profile(out=runs_dir, telemetry="nosuch"):
        pass
    assert not runs_dir.exists()


def test_help_explains_every_option() -> None:
    doc = inspect.getdoc(cnnprof.profile) or ""
    for name in inspect.signature(Profile.__init__).parameters:
        if name != "self":
            assert f"{name}:" in doc, name


def test_import_stays_cheap() -> None:
    code = (
        "import sys, cnnprof; cnnprof.__all__; "
        "assert not {'torch', 'mlx', 'pandas', 'cnnprof.api'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert callable(cnnprof.profile) and "load_ipython_extension" in dir(cnnprof)


def test_marks_reach_a_script_under_cnnprof_profile(
    runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnnprof.cli import main

    script = tmp_path / "marks.py"
    script.write_text(
        "import cnnprof\n"
        "for _ in range(4):\n"
        "    cnnprof.step()\n"
        "with cnnprof.phase('eval'):\n"
        "    pass\n"
        "try:\n"
        "    cnnprof.profile().__enter__()\n"
        "except cnnprof.ProfileError as exc:\n"
        "    print('refused:', exc)\n"
    )
    argv = ["profile", "--telemetry", "none", "--profiler", "none", "--no-report", "--out", str(runs_dir)]
    assert main([*argv, "--", str(script)]) == 0
    assert "refused: cnnprof is already observing this process" in capsys.readouterr().out
    spans = _spans(only_run_dir(runs_dir))
    assert (spans["name"] == "mark").sum() == 4 and spans["kind"].tolist().count("phase") == 1
    cnnprof.step()  # the script's run has ended: nothing observes the process any more
