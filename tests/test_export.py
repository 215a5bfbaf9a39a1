"""Chrome trace events (Perfetto) and speedscope exports of a run directory."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from report_runs import HOSTILE_FUNCTION, make_run

from cnnprof.errors import UserError
from cnnprof.traces.export import SPEEDSCOPE_SCHEMA, export_chrome, export_command, export_speedscope
from cnnprof.traces.flame import function_matrix, merge_samples, sample_intervals
from cnnprof.traces.reader import RunData, RunDirError


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    path = make_run(tmp_path_factory.mktemp("runs") / "run", telemetry=("powermetrics", "nvml", "procfs"), hostile=True)
    return RunData(path)


def test_chrome_trace(run: RunData, tmp_path: Path):
    out = export_chrome(run, tmp_path / "trace.json")
    trace = json.loads(out.read_text())
    assert trace["displayTimeUnit"] == "ms"
    assert trace["otherData"]["t0_perf_ns"] == run.meta["t0_perf_ns"]
    events = trace["traceEvents"]
    phases = Counter(e["ph"] for e in events)
    matrix, _ = function_matrix(run.stacks)
    bars = merge_samples(sample_intervals(run.samples, matrix.shape[0]), matrix)
    assert phases["X"] == len(run.spans) + len(bars)
    assert phases["C"] == len(run.telemetry)
    assert phases["M"] >= 6
    for e in events:
        if e["ph"] in ("X", "C"):
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
            assert e["pid"] == 1
        if e["ph"] == "X":
            assert e["dur"] >= 0 and isinstance(e["tid"], int) and e["name"]
    # Spans: µs since t0, on a thread per family; sync calls carry their caller.
    spans = run.spans
    first = spans.iloc[0]
    x = [e for e in events if e["ph"] == "X" and e.get("cat") == first["kind"]][0]
    assert x["ts"] == pytest.approx(first["start_ns"] / 1e3, abs=1e-3)
    syncs = [e for e in events if e.get("cat") == "sync"]
    assert syncs and all(e["tid"] == 3 and e["args"]["caller"].startswith("cnnprof/") for e in syncs)
    epochs = [e for e in events if e.get("cat") == "epoch"]
    assert [e["args"]["epoch"] for e in epochs] == [1, 2]
    # Stack samples: own thread, nested slices (a child lies inside the slice above it).
    samples = [e for e in events if e.get("cat") == "sample"]
    assert {e["tid"] for e in samples} == {10}
    assert any(e["name"] == HOSTILE_FUNCTION for e in samples)
    ends: list[float] = []
    for e in samples:  # in (start, depth) order: a stack of open slices must nest
        while ends and ends[-1] <= e["ts"] + 1e-6:
            ends.pop()
        if ends:
            assert e["ts"] + e["dur"] <= ends[-1] + 1e-3
        ends.append(e["ts"] + e["dur"])
    # Counters: one track per series, named with the unit.
    names = {e["name"] for e in events if e["ph"] == "C"}
    assert "nvml power_w (W)" in names and "procfs cpu.0.busy_pct (%)" in names


def test_speedscope(run: RunData, tmp_path: Path):
    out = export_speedscope(run, tmp_path / "profile.speedscope.json")
    doc = json.loads(out.read_text())
    # The fields of speedscope's file format (src/lib/file-format-spec.ts).
    assert doc["$schema"] == SPEEDSCOPE_SCHEMA
    assert set(doc) >= {"shared", "profiles", "name", "activeProfileIndex", "exporter"}
    frames = doc["shared"]["frames"]
    assert all(isinstance(f["name"], str) for f in frames)
    assert all(isinstance(f.get("line", 0), int) and isinstance(f.get("file", ""), str) for f in frames)
    assert len(doc["profiles"]) == 1 and doc["activeProfileIndex"] == 0
    p = doc["profiles"][0]
    assert p["type"] == "sampled" and p["unit"] == "nanoseconds"
    assert p["startValue"] <= p["endValue"]
    assert len(p["samples"]) == len(p["weights"]) > 0
    assert all(0 <= i < len(frames) for stack in p["samples"] for i in stack)
    # Weights are the samples' dt: nothing is lost by merging runs of the same stack.
    assert sum(p["weights"]) == int(run.samples["dt_ns"].sum())
    assert len(p["samples"]) < len(run.samples)
    sid = run.samples["stack_id"].to_numpy()
    assert len(p["samples"]) == 1 + int(np.count_nonzero(sid[1:] != sid[:-1]))
    assert any(frames[s[-1]]["name"] == HOSTILE_FUNCTION for s in p["samples"])


def test_speedscope_without_samples(tmp_path: Path):
    run = RunData(make_run(tmp_path / "run", samples=False))
    with pytest.raises(UserError, match="no stack samples to export"):
        export_speedscope(run, tmp_path / "p.json")
    trace = json.loads(export_chrome(run, tmp_path / "t.json").read_text())
    assert not [e for e in trace["traceEvents"] if e.get("cat") == "sample"]


def test_export_command(run: RunData, tmp_path: Path):
    assert export_command(run.path, "chrome", tmp_path / "a" / "t.json").exists()
    assert export_command(run.path, "speedscope", tmp_path / "s.json").exists()
    with pytest.raises(UserError, match="unknown export format"):
        export_command(run.path, "pprof", tmp_path / "x")
    with pytest.raises(RunDirError):
        export_command(tmp_path / "nope", "chrome", tmp_path / "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write"):
        export_command(run.path, "chrome", tmp_path / "file" / "t.json")
