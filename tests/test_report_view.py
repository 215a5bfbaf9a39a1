"""What the user sees of a run: cnnprof's own frames folded out of the flame chart, the call trees
and the hot-function table (kept in the raw files), and counts that name their unit."""

from __future__ import annotations

import base64
import cProfile
import json
import re
from pathlib import Path

import numpy as np
from report_runs import make_run

import cnnprof.cli
import cnnprof.profiler.sampler
import cnnprof.profiler.sync
from cnnprof.reports.findings import CallSite, Finding
from cnnprof.reports.findings_view import findings_html
from cnnprof.reports.hot import hot_functions
from cnnprof.reports.html import build_report
from cnnprof.reports.timeline import build_timeline
from cnnprof.traces import schema
from cnnprof.traces.flame import OWN_FUNCTION, function_matrix, is_own_frame
from cnnprof.traces.reader import RunData
from cnnprof.traces.writer import write_json, write_table


def test_own_frames_are_cnnprofs_machinery_not_its_training_loops():
    for module in (cnnprof.profiler.sync, cnnprof.profiler.sampler, cnnprof.cli):
        assert is_own_frame(module.__file__, library=True), module.__file__
    import runpy

    assert is_own_frame(runpy.__file__, library=True)
    assert not is_own_frame("/home/me/runpy.py", library=False)  # a user's file of that name
    assert not is_own_frame("/src/cnnprof/models/loops/torch_loop.py", library=True)
    assert not is_own_frame("/src/cnnprof/train.py", library=True)
    assert not is_own_frame("/home/me/train.py", library=False)


def _frames(*specs: tuple[str, str, bool]) -> list[dict[str, object]]:
    return [{"function": fn, "file": file, "line": 1, "first_line": 1, "library": lib} for fn, file, lib in specs]


SYNC = "/venv/lib/python3.11/site-packages/cnnprof/profiler/sync.py"
SAMPLER = "/venv/lib/python3.11/site-packages/cnnprof/profiler/sampler.py"
STACKS = {
    "frames": _frames(
        ("<module>", "/venv/lib/python3.11/site-packages/cnnprof/cli.py", True),  # 0
        ("_run_code", "/usr/lib/python3.11/runpy.py", True),  # 1
        ("<module>", "/home/me/train.py", False),  # 2
        ("hooked", SYNC, True),  # 3
        ("item", "<built-in>", True),  # 4
        ("on_sigalrm", SAMPLER, True),  # 5
        ("step", "/home/me/train.py", False),  # 6
    ),
    "stacks": [[0, 1, 2, 3, 4], [0, 1, 2, 6, 5], [0, 5]],
}


def test_folding_takes_own_frames_out_and_moves_the_rest_up():
    raw, _ = function_matrix(STACKS)
    assert raw.shape == (3, 5)
    matrix, funcs = function_matrix(STACKS, fold_own=True)
    names = [[funcs.function[f] for f in row if f >= 0] for row in matrix]
    assert names == [["<module>", "item"], ["<module>", "step"], [OWN_FUNCTION]]
    assert funcs.file[matrix[0, 0]] == "/home/me/train.py"


def test_the_report_folds_own_frames_but_the_run_directory_keeps_them(tmp_path: Path):
    run_dir = make_run(tmp_path / "run", epochs=1, cprofile=False)
    write_json(run_dir / schema.STACKS, STACKS)
    ms = 1_000_000
    samples = {"t_ns": [10 * ms, 20 * ms, 30 * ms], "dt_ns": [ms, ms, ms], "stack_id": [0, 1, 2]}
    write_table(run_dir / schema.SAMPLES, samples, schema.SAMPLES_SCHEMA)
    timeline = build_timeline(RunData(run_dir))
    stacks = timeline.data["stacks"]
    func = np.frombuffer(base64.b64decode(stacks["tree"]["func"]["b64"]), dtype="<u2")  # each node's function
    drawn = {stacks["funcs"]["name"][f] for f in func}
    assert drawn == {"<module>", "item", "step", OWN_FUNCTION}
    assert any("cnnprof's own frames" in n for n in timeline.notes)
    assert "hooked" in (run_dir / schema.STACKS).read_text()  # the raw data is untouched


def _profiled(tmp_path: Path) -> Path:
    """A real cProfile of some user work and some code of cnnprof/profiler/."""
    from cnnprof.profiler import host

    profile = cProfile.Profile()
    profile.enable()
    json.dumps({"a": [1, 2, 3]})
    host.cpu_model()
    profile.disable()
    path = tmp_path / "p.pstats"
    profile.dump_stats(path)
    return path


def test_the_hot_table_leaves_cnnprofs_own_functions_out(tmp_path: Path):
    table = hot_functions(_profiled(tmp_path))
    assert table.own_left_out > 0
    assert not [r for r in table.rows if "cnnprof/profiler/" in r.file]
    assert any(r.function == "dumps" for r in table.rows)


def test_call_sites_name_their_unit():
    sites = [CallSite(file="train.py", line=3, count=12, seconds=0.5)]
    html = findings_html([Finding(id="x", severity="high", claim="c", evidence=[], fix="", call_sites=sites)], None)
    assert "<th>calls</th>" in html
    sampled = CallSite(file="train.py", line=3, count=12, seconds=0.5, unit="samples")
    html = findings_html([Finding(id="x", severity="high", claim="c", evidence=[], fix="", call_sites=[sampled])], None)
    assert "<th>samples</th>" in html and "<th>calls</th>" not in html


def test_the_report_says_what_each_count_counts(tmp_path: Path):
    text = build_report([make_run(tmp_path / "run", epochs=1)], tmp_path / "r.html").read_text()
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", text)
    assert "tottime (s)" in headers and "cumtime (s)" in headers


def test_procfs_counts_the_training_process_preemptions():
    import os
    import time

    from cnnprof.profiler.telemetry.base import SourceConfig
    from cnnprof.profiler.telemetry.procfs import ProcfsSource

    source = ProcfsSource(SourceConfig(interval_ms=100, target_pid=os.getpid()))
    assert source.probe().ok and source.metrics["proc_preemptions_per_s"][0] == "1/s"
    now = time.perf_counter_ns()
    first = {m for _, m, _ in source.read(now)}
    assert "proc_preemptions_per_s" not in first  # a rate needs two readings
    rows = {m: v for _, m, v in source.read(now + 1_000_000_000)}  # a second later, on the source's clock
    assert rows["proc_preemptions_per_s"] >= 0.0


def test_the_preemptions_lane_draws_the_metric(tmp_path: Path):
    timeline = build_timeline(RunData(make_run(tmp_path / "run", epochs=1, telemetry=("procfs",), samples=False)))
    lane = [t for t in timeline.figure["data"] if t.get("meta") == "preemptions"]
    assert [t["name"] for t in lane] == ["procfs training process"]
    other = build_timeline(RunData(make_run(tmp_path / "pm", epochs=1, telemetry=("powermetrics",))))
    assert not any(t.get("meta") == "preemptions" for t in other.figure["data"])  # no reading, no lane


def test_a_report_of_dot_names_the_run_directory(tmp_path: Path, monkeypatch):
    run_dir = make_run(tmp_path / "20240101-120000-mlx_gpu-synthetic", epochs=1, samples=False)
    monkeypatch.chdir(run_dir)
    text = build_report([Path(".")], tmp_path / "r.html").read_text()
    assert "<p class='muted mono'>20240101-120000-mlx_gpu-synthetic · " in text
