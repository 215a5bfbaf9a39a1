"""The subcommands end to end through `cnnprof.cli.main`, as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import only_run_dir

from cnnprof.cli import main
from cnnprof.traces.reader import RunData

SCRIPTS = Path(__file__).parent / "scripts"


def test_profile_a_script_gives_its_verdict_and_input_pipeline(tmp_path: Path, capsys):
    out = tmp_path / "runs"
    code = main(["profile", "--telemetry", "none", "--no-report", "--out", str(out), "--",
                 str(SCRIPTS / "train_torch.py"), "--epochs", "1"])
    assert code == 0
    run_dir = only_run_dir(out)
    assert RunData(run_dir).meta["kind"] == "script"
    capsys.readouterr()
    assert main(["diagnose", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"]["id"] == "input-bound"
    assert set(result["verdict"]["split"]) == {"data", "forward", "backward", "optimizer", "sync", "other"}
    findings = result["findings"]
    # The per-batch .item() reads a CPU tensor: it waits for nothing, so it is no sync finding.
    assert not [f for f in findings if f["id"].startswith("sync")]
    input_bound = [f for f in findings if f["id"] == "input-bound"]
    assert input_bound and "__getitem__" in json.dumps(input_bound[0])
    loop_line = next(i for i, line in enumerate((SCRIPTS / "train_torch.py").read_text().splitlines(), 1)
                     if "for x, y in loader" in line)
    sites = [(Path(s["file"]).name, s["line"], s["unit"]) for s in input_bound[0]["call_sites"]]
    assert ("train_torch.py", loop_line, "samples") in sites  # the user's loop line, not only torch's


def test_profile_a_failing_script_keeps_its_run_and_exits_non_zero(tmp_path: Path, capsys):
    out = tmp_path / "runs"
    code = main(["profile", "--telemetry", "none", "--no-report", "--out", str(out), "--",
                 str(SCRIPTS / "raises.py")])
    assert code == 1
    err = capsys.readouterr().err
    assert "boom from the profiled script" in err  # the script's own traceback, as python prints it
    meta = RunData(only_run_dir(out)).meta
    assert meta["status"] == "failed" and "boom" in meta["error"]


@pytest.mark.slow
def test_bench_runs_each_backend_and_writes_the_comparison(tmp_path: Path, capsys):
    code = main(["bench", "--backends", "torch_cpu,mlx_cpu,torch_mps", "--loops", "seed", "--epochs", "1",
                 "--train-images", "256", "--test-images", "128", "--batch-size", "128",
                 "--single-inference", "4", "--telemetry", "none", "--profiler", "none", "--out", str(tmp_path)])
    assert code == 0
    (bench_dir,) = [p for p in tmp_path.iterdir() if p.name.endswith("-bench")]
    markdown = (bench_dir / "bench.md").read_text()
    assert "torch_cpu / seed / synthetic" in markdown and "mlx_cpu / seed / synthetic" in markdown
    assert "torch_mps: the mps device exists only on macOS" in markdown  # skipped with its reason
    html = (bench_dir / "compare.html").read_text()
    assert "torch_cpu / seed" in html and "mlx_cpu / seed" in html


def test_bench_rejects_an_unknown_backend(tmp_path: Path, capsys):
    assert main(["bench", "--backends", "torch_cpu,gpu9000", "--out", str(tmp_path)]) == 2
    assert "unknown backend gpu9000" in capsys.readouterr().err


def test_report_and_export_of_a_run(tmp_path: Path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "--backend", "torch_cpu", "--epochs", "1", "--train-images", "256", "--test-images",
                 "128", "--batch-size", "128", "--single-inference", "2", "--telemetry", "procfs",
                 "--out", str(out)]) == 0
    run_dir = only_run_dir(out)
    assert (run_dir / "report.html").stat().st_size > 100_000  # written by `run` itself
    assert main(["report", str(run_dir), str(run_dir), "-o", str(tmp_path / "cmp.html")]) == 0
    assert (tmp_path / "cmp.html").exists()
    assert main(["export", str(run_dir), "--format", "chrome", "-o", str(tmp_path / "t.json")]) == 0
    events = json.loads((tmp_path / "t.json").read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    assert any(e.get("ph") == "C" for e in events)  # procfs telemetry as counters
    meta = RunData(run_dir).meta
    assert meta["telemetry"]["sources"]["procfs"] == "ok"
