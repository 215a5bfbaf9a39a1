"""The HTML report and the comparison, read as text (the browser tests drive a real Chromium)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.offline
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_runs import HOSTILE_FILE, HOSTILE_FUNCTION, make_run

from cnnprof.reports import html as report_html
from cnnprof.reports import run_page
from cnnprof.reports import timeline as tl
from cnnprof.reports.findings import CallSite, Diagnosis, Finding, Verdict
from cnnprof.reports.html import build_report
from cnnprof.reports.timeline import energy_data, packing
from cnnprof.reports.timeline import lane as tl_lane
from cnnprof.reports.timeline import spans as tl_spans
from cnnprof.reports.timeline import stacks as tl_stacks
from cnnprof.reports.timeline.lanes import cores, phases
from cnnprof.traces import schema
from cnnprof.traces.energy import PowerSeries, cumulative_energy, power_series, series_energy
from cnnprof.traces.flame import call_tree, function_matrix, merge_samples, sample_intervals, stack_matrix
from cnnprof.traces.reader import RunData, RunDirError
from cnnprof.traces.record import Script
from cnnprof.traces.writer import write_json

PLOTLY_JS = plotly.offline.get_plotlyjs()


def _data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="cnnprof-data">(.*?)</script>', text, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


def _ours(text: str) -> str:
    """The report without the inlined plotly.js (whose source mentions URLs it never fetches here)."""
    assert PLOTLY_JS in text
    return text.replace(PLOTLY_JS, "")


def _unpack(x: dict) -> np.ndarray:
    kinds = {"u1": "<u1", "u2": "<u2", "u4": "<u4", "i4": "<i4", "f4": "<f4", "f8": "<f8"}
    a = np.frombuffer(base64.b64decode(x["b64"]), dtype=kinds[x["p"]])
    return np.cumsum(a.astype(np.float64)) if x["d"] else a


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "run", hostile=True, sync_share=0.4)


@pytest.fixture(scope="module")
def report_text(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = build_report([run_dir], tmp_path_factory.mktemp("out") / "report.html")
    return out.read_text(encoding="utf-8")


# -- the page ------------------------------------------------------------------------------------
def test_report_is_self_contained(report_text: str):
    ours = _ours(report_text)
    assert "Plotly" in report_text  # plotly.js inlined
    for pattern in (r"<link\b", r"@import", r"url\(\s*['\"]?https?:", r"""(src|href)\s*=\s*['"]?(https?:)?//"""):
        assert not re.search(pattern, ours, re.I), pattern
    assert "default-src 'none'" in ours  # the page cannot fetch even if something tried
    # Our three scripts only: data, plotly.js, the report's own.
    assert report_text.count("<script") == 3


def test_report_sections(report_text: str):
    for title in ("Summary", "Findings", "Timeline", "Hot functions", "Epochs", "Inference", "Run details"):
        assert f"<h2>{title}</h2>" in report_text
    data = _data(report_text)
    assert set(data["figures"]) == {"timeline", "fig-epochs", "fig-inference"}
    lanes = {t.get("meta") for t in data["figures"]["timeline"]["data"]}
    assert {"phases", "gpu_clock", "gpu_activity", "power", "cpu", "memory", "flame", "overview"} <= lanes
    assert data["figures"]["timeline"]["layout"]["xaxis"]["rangeslider"]["visible"]
    # Every lane matches the overview's x axis: one time axis for all.
    layout = data["figures"]["timeline"]["layout"]
    assert all(layout[k]["matches"] == "x" for k in layout if re.fullmatch(r"xaxis\d+", k))
    assert data["timeline"]["stacks"]["n_samples"] > 0
    # The energy card: joules and per training image.
    assert "training energy: GPU" in report_text and "mJ per training image" in report_text


def test_verdict_and_findings_are_shown(report_text: str):
    # the run spends 40 % of each step in Tensor.item while its GPU is busy: device-bound syncs,
    # named as info, under a compute-bound verdict with the step's split
    assert "<h2>Verdict</h2>" in report_text and "compute-bound" in report_text
    assert "sync-sites" in report_text and "device-bound" in report_text


def test_finding_rendering_escapes(monkeypatch: pytest.MonkeyPatch, run_dir: Path, tmp_path: Path):
    finding = Finding(
        "sync-bound",
        "high",
        "claim <b>x</b>",
        ["evidence <i>y</i>"],
        "fix <u>z</u>",
        [CallSite("<script>f.py", 3, 10, 1.5)],
    )
    verdict = Verdict("sync-bound", "verdict <b>v</b>", ["because <i>w</i>"], "do <u>q</u>", "<s>window</s>",
                      0.01, {"sync": 0.5, "<p>part": 0.5}, None)
    monkeypatch.setattr(run_page, "run_diagnosis", lambda run: (Diagnosis(verdict, [finding]), None))
    text = build_report([run_dir], tmp_path / "r.html").read_text()
    for raw in ("<b>x</b>", "<i>y</i>", "<u>z</u>", "<script>f.py", "<b>v</b>", "<i>w</i>", "<u>q</u>", "<s>window",
                "<p>part"):
        assert raw not in _ours(text)
    assert "claim &lt;b&gt;x&lt;/b&gt;" in text and "&lt;script&gt;f.py:3" in text
    assert "verdict &lt;b&gt;v&lt;/b&gt;" in text


def test_hostile_names_are_text_not_markup(report_text: str):
    ours = _ours(report_text)
    # Neither raw in the page nor able to close the data block.
    assert HOSTILE_FUNCTION not in ours
    assert "</script><script>alert" not in ours
    assert "<b>bold</b>" not in ours and "alert('error')</script>" not in ours
    # Escaped where it is HTML (hot-function table, command line) ...
    assert "&lt;img src=x onerror=alert(1)&gt;" in ours
    assert "&lt;b&gt;bold&lt;/b&gt;" in ours
    # ... and intact in the data the page's script turns into text nodes.
    data = _data(report_text)
    names = data["timeline"]["stacks"]["funcs"]["name"]
    assert HOSTILE_FUNCTION in names
    assert HOSTILE_FILE + ":5" in data["timeline"]["stacks"]["funcs"]["where"]
    # The JSON block is closed only by its own </script>.
    block = re.search(r'id="cnnprof-data">(.*?)</script>', report_text, re.S).group(1)
    assert "<" not in block


def test_failed_run_error_text_is_escaped(tmp_path: Path):
    run = make_run(tmp_path / "failed", status="failed", hostile=True, samples=False, telemetry=())
    text = _ours(build_report([run], tmp_path / "r.html").read_text())
    assert "&lt;script&gt;alert(&#x27;error&#x27;)&lt;/script&gt; device lost" in text
    assert "run status is &#x27;failed&#x27;" in text  # RunData's note, in "What is missing"


def test_missing_lanes_say_why(tmp_path: Path):
    run = make_run(tmp_path / "cpu", telemetry=("procfs",), samples=False, cprofile=False)
    text = build_report([run], tmp_path / "r.html").read_text()
    assert (
        "no GPU clock lane: powermetrics unavailable: sudo -n powermetrics failed: a password is required; "
        "nvml unavailable: nvidia-ml-py is not installed" in text
    )
    assert "no flame chart: no stack samples" in text
    assert "cProfile did not run" in text
    data = _data(text)
    lanes = {t.get("meta") for t in data["figures"]["timeline"]["data"]}
    assert "cores" in lanes  # procfs per-core busy as a heat map: no clusters on this machine
    assert "gpu_clock" not in lanes and "flame" not in lanes


def test_nvml_slowdowns_are_marked(tmp_path: Path):
    run = make_run(tmp_path / "gpu", telemetry=("nvml", "procfs"), backend="torch_cuda", samples=False)
    data = _data(build_report([run], tmp_path / "r.html").read_text())
    marks = [t for t in data["figures"]["timeline"]["data"] if t["name"].endswith("(slowdown)")]
    assert len(marks) == 1 and len(marks[0]["x"]) == 1
    assert "SW power cap, SW thermal slowdown" in marks[0]["hovertext"][0]


def test_no_telemetry_at_all(tmp_path: Path):
    run = make_run(tmp_path / "none", telemetry=())
    meta = json.loads((run / "run.json").read_text())
    meta["telemetry"] = {"sources": {}, "metrics": {}}
    write_json(run / "run.json", meta)
    (run / schema.TELEMETRY).unlink()
    text = build_report([run], tmp_path / "r.html").read_text()
    assert "no power lane: no telemetry was recorded" in text
    assert "no telemetry (telemetry.parquet is missing)" in text


# -- corrupt and partial run directories ---------------------------------------------------------
def test_no_run_json_is_one_clear_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="not a cnnprof run directory") as err:
        build_report([tmp_path / "empty"], tmp_path / "r.html")
    assert "\n" not in str(err.value)
    with pytest.raises(RunDirError, match="no such run directory"):
        build_report([tmp_path / "missing"], tmp_path / "r.html")


def test_unreadable_run_json_is_one_clear_error(tmp_path: Path):
    run = make_run(tmp_path / "run", samples=False)
    (run / "run.json").write_text("{not json")
    with pytest.raises(RunDirError, match="unreadable") as err:
        build_report([run], tmp_path / "r.html")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r.html").exists()


def test_corrupt_tables_give_a_report_with_notes(tmp_path: Path):
    run = make_run(tmp_path / "run", hostile=True)
    (run / schema.SPANS).write_bytes(b"PAR1 this is not parquet")
    (run / schema.STACKS).write_text("[truncated")
    (run / schema.PSTATS).write_bytes(b"\x00garbage")
    (run / schema.INFERENCE).unlink()
    text = build_report([run], tmp_path / "r.html").read_text()
    assert "What is missing" in text
    assert "spans.parquet is unreadable" in text
    assert "stacks.json is unreadable" in text
    assert "profile.pstats is unreadable" in text
    assert "no inference timings (inference.parquet is missing)" in text
    data = _data(text)
    lanes = {t.get("meta") for t in data["figures"]["timeline"]["data"]}
    assert "power" in lanes and "phases" not in lanes  # what is there is still drawn


def test_malformed_tables_cost_only_their_section(tmp_path: Path):
    run = make_run(tmp_path / "run", samples=False)
    pd.DataFrame({"kind": ["batched"], "index": ["x"], "n_images": ["many"], "seconds": ["slow"]}).to_parquet(
        run / schema.INFERENCE
    )
    pd.DataFrame({"t_ns": [1, 2], "source": ["a", "a"], "metric": ["x_power_w", "x_power_w"]}).to_parquet(
        run / schema.TELEMETRY
    )
    text = build_report([run], tmp_path / "r.html").read_text()
    assert "the inference table left out: it could not be built" in text
    assert "<h2>Epochs</h2>" in text and {"fig-epochs", "timeline"} <= set(_data(text)["figures"])


def test_interrupted_run_mid_epoch(tmp_path: Path):
    """Killed during epoch 2: run.json still says running, no metrics for epoch 2, partial tables."""
    run = make_run(tmp_path / "run", epochs=2, status="interrupted")
    spans = pd.read_parquet(run / schema.SPANS)
    cut = int(spans["end_ns"].quantile(0.6))
    spans = spans[spans["start_ns"] < cut]
    spans.to_parquet(run / schema.SPANS)
    (run / schema.METRICS).unlink()
    samples = pd.read_parquet(run / schema.SAMPLES)
    samples.iloc[: len(samples) // 2].to_parquet(run / schema.SAMPLES)
    text = build_report([run], tmp_path / "r.html").read_text()
    assert "run status is &#x27;interrupted&#x27;" in text
    assert "no per-epoch metrics (metrics.parquet is missing)" in text


def test_script_run(tmp_path: Path):
    script = Script(path="train<x>.py", argv=["--lr", "1"], exit_code=0)
    run = make_run(tmp_path / "run", epochs=1, script=script, backend="torch_cuda")
    (run / schema.METRICS).unlink()
    (run / schema.INFERENCE).unlink()
    text = build_report([run], tmp_path / "r.html").read_text()
    assert "train&lt;x&gt;.py" in text and "train<x>.py" not in _ours(text)
    assert "a profiled script has no epochs" in text
    cards = re.findall(r"<div class='card-title'>(.*?)</div><div class='card-value'>(.*?)</div>", text)
    assert ("script", "<span class='mono'>train&lt;x&gt;.py</span>") in cards
    assert ("backend", "torch_cuda") in cards
    assert "epochs" not in dict(cards)
    assert "<title>cnnprof: train&lt;x&gt;.py / torch_cuda</title>" in text


def test_a_version_1_script_run_is_read_with_its_target(tmp_path: Path):
    """Version 1 kept the target in config (target/args/module) and exit_code at the top level."""
    run = make_run(tmp_path / "run", epochs=1, samples=False)
    meta = json.loads((run / "run.json").read_text())
    meta.update(
        schema_version=1,
        kind="script",
        exit_code=3,
        config={"target": "mine.py", "module": False, "args": ["-n", "2"], "profiler": "both"},
        dataset={},
        model={},
        backend={},
    )
    write_json(run / "run.json", meta)
    record = RunData(run).record
    assert record.script == Script(path="mine.py", module=False, argv=["-n", "2"], exit_code=3)
    assert record.config == {"profiler": "both"} and record.dataset is None and record.backend.name == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"t0_perf_ns": "soon"}, "t0_perf_ns should be int, not str"),
        ({"backend": {"name": 5}}, "backend.name should be str, not int"),
        ({"status": "exploded"}, "status 'exploded' is none of running"),
        ({"schema_version": 99}, "schema_version 99 is newer"),
        ({"host": []}, "host should be an object"),
    ],
)
def test_a_bad_run_json_is_one_line(tmp_path: Path, change: dict[str, Any], message: str):
    run = make_run(tmp_path / "run", epochs=1, samples=False)
    meta = json.loads((run / "run.json").read_text())
    write_json(run / "run.json", {**meta, **change})
    with pytest.raises(RunDirError, match=re.escape(message)) as err:
        RunData(run)
    assert "\n" not in str(err.value)


def test_the_record_round_trips_with_fields_it_does_not_know(tmp_path: Path):
    run = make_run(tmp_path / "run", epochs=1, samples=False)
    meta = json.loads((run / "run.json").read_text())
    meta["sync_hooks"] = {"devices": {"cuda": 3}}
    meta["from_a_later_version"] = [1, 2]
    write_json(run / "run.json", meta)
    record = RunData(run).record
    assert record.section("sync_hooks") == {"devices": {"cuda": 3}}
    assert record.to_dict() == {**meta, "script": None}


def test_report_command_default_paths(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert report_html.report_command([run_dir]) == run_dir / "report.html"
    assert report_html.report_command([run_dir, run_dir]) == Path("comparison.html")
    assert (tmp_path / "comparison.html").exists()
    assert report_html.report_command([run_dir], tmp_path / "x" / "r.html").exists()
    with pytest.raises(report_html.UserError, match="no run directory"):
        report_html.report_command([])


def test_unwritable_output_is_one_clear_error(run_dir: Path, tmp_path: Path):
    (tmp_path / "file").write_text("")
    with pytest.raises(report_html.UserError, match="cannot write the report"):
        build_report([run_dir], tmp_path / "file" / "r.html")


# -- long runs: what is drawn is capped, aggregates are not ------------------------------------
def test_caps_hold_and_aggregates_stay_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    run_path = make_run(tmp_path / "run", epochs=3, batches=20, single=200, interval_ms=20)
    for module, name, value in (
        (tl_lane, "MAX_POINTS", 40),
        (tl_spans, "MAX_INNER_SPANS", 50),
        (phases, "MAX_SYNC_MARKS", 10),
        (tl_stacks, "FLAME_EMBED", 200),
        (tl_stacks, "SAMPLE_ROWS", 300),
        (tl_spans, "RAW_SPANS", 100),
        (energy_data, "POWER_POINTS", 30),
        (cores, "HEATMAP_COLUMNS", 25),
    ):
        monkeypatch.setattr(module, name, value)
    run = RunData(run_path)
    timeline = tl.build_timeline(run)
    traces = timeline.figure["data"]
    for t in traces:
        if t["type"] == "scatter" and t.get("meta") not in ("phases", "steps", "overview"):
            assert len(t["x"]) <= 40 + 2, t["name"]
        if t.get("meta") == "phases" and t["type"] == "scatter":
            assert len(t["x"]) <= 10
    assert any(t.get("meta") == "steps" for t in traces)  # too many step spans: shares of time
    assert not any(t.get("meta") == "phases" and t.get("name") == "forward" for t in traces)
    data = timeline.data
    assert len(_unpack(data["stacks"]["flame"]["d"])) <= 200
    assert len(_unpack(data["stacks"]["rows"]["n"])) <= 300
    # The call-tree rows still weigh every sample.
    weight_ms = _unpack(data["stacks"]["rows"]["w"]).sum() / 1e3
    assert weight_ms == pytest.approx(run.samples["dt_ns"].sum() / 1e6, rel=1e-3)
    # Coverage (not raw spans): the whole run's forward time is exact.
    fwd = data["phases"]["labels"]["forward"]
    spans = run.spans[run.spans["kind"] == "forward"]
    assert _unpack(fwd["c"])[-1] == pytest.approx((spans["end_ns"] - spans["start_ns"]).sum() / 1e3, abs=2)
    assert _unpack(fwd["n"])[-1] == len(spans)
    # Power downsampled to points of the cumulative energy: a range's energy is exact at them.
    series = power_series(run.telemetry)
    for key, payload in data["power"].items():
        x, e = _unpack(payload["x"]) * 1e3, _unpack(payload["e"])
        assert len(x) <= 30
        assert e[-1] - e[0] == pytest.approx(series_energy(series[key], 0, 10**15), rel=1e-4, abs=1e-6)
        assert e[20] - e[3] == pytest.approx(series_energy(series[key], int(x[3]), int(x[20])), rel=1e-6, abs=1e-9)
    assert any("drawn with at most 40 points" in n for n in timeline.notes)
    assert any("sync marks drawn" in n for n in timeline.notes)


# -- the pieces ---------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400), st.integers(4, 60))
def test_minmax_downsampling_keeps_extremes(values: list[float], max_points: int):
    v = np.asarray(values)
    t = np.arange(len(v)) * 10
    idx = packing.minmax_indices(t, v, max_points)
    assert len(idx) <= max(max_points, len(v) if len(v) <= max_points else max_points)
    assert np.all(np.diff(idx) > 0)
    assert v[idx].max() == v.max() and v[idx].min() == v.min()


def _brute_flame(starts, ends, stacks, matrix):
    """Per-sample per-depth walk, merging while (same prefix at this depth) and contiguous."""
    bars = []
    open_: list[list[int]] = []  # [frame, start, end] per depth
    prev_end = None
    prev_row = None
    for s, e, sid in zip(starts, ends, stacks):
        row = [f for f in matrix[sid] if f >= 0]
        keep = 0
        if prev_row is not None and s - prev_end <= 2_000_000:
            while keep < min(len(row), len(prev_row)) and row[keep] == prev_row[keep]:
                keep += 1
        for d in range(len(open_) - 1, keep - 1, -1):
            bars.append((open_[d][1], open_[d][2], d, open_[d][0]))
        open_ = open_[:keep]
        for d in range(keep):
            open_[d][2] = e
        for d in range(keep, len(row)):
            open_.append([row[d], s, e])
        prev_end, prev_row = e, row
    for d in range(len(open_) - 1, -1, -1):
        bars.append((open_[d][1], open_[d][2], d, open_[d][0]))
    return sorted(bars)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_flame_merge_matches_a_brute_force_walk(data: st.DataObject):
    stacks = data.draw(st.lists(st.lists(st.integers(0, 3), min_size=0, max_size=4), min_size=1, max_size=6))
    n = data.draw(st.integers(1, 40))
    sid = data.draw(st.lists(st.integers(0, len(stacks) - 1), min_size=n, max_size=n))
    gaps = data.draw(st.lists(st.sampled_from([0, 0, 0, 5_000_000]), min_size=n, max_size=n))
    dt = 1_000_000
    t, cur = [], 0
    for g in gaps:
        cur += g
        t.append(cur)
        cur += dt
    samples = pd.DataFrame({"t_ns": t, "dt_ns": [dt] * n, "stack_id": sid})
    matrix = stack_matrix(stacks, 4)
    iv = sample_intervals(samples, len(stacks))
    bars = merge_samples(iv, matrix)
    got = sorted(zip(bars.start_ns.tolist(), bars.end_ns.tolist(), bars.depth.tolist(), bars.frame.tolist()))
    assert got == _brute_flame(iv.start_ns.tolist(), iv.end_ns.tolist(), iv.stack.tolist(), matrix)
    # Parents come before children in the bars' order and contain them.
    for i in range(len(bars)):
        if bars.depth[i] > 0:
            parents = [
                j
                for j in range(i)
                if bars.depth[j] == bars.depth[i] - 1
                and bars.start_ns[j] <= bars.start_ns[i]
                and bars.end_ns[j] >= bars.end_ns[i]
            ]
            assert parents


def test_call_tree_marks_recursion():
    matrix = stack_matrix([[0, 1, 0, 2], [0, 1], [3]], 4)
    tree = call_tree(matrix)
    assert tree.parent.tolist() == [-1, 0, 1, 2, -1]
    assert tree.frame.tolist() == [0, 1, 0, 2, 3]
    assert tree.first.tolist() == [True, True, False, True, True]
    assert tree.leaf.tolist() == [3, 1, 4]


def test_function_level_frames():
    stacks = {
        "frames": [
            {"function": "f", "file": "a.py", "line": 3, "first_line": 1},
            {"function": "f", "file": "a.py", "line": 5, "first_line": 1},
            {"function": "g", "file": "a.py", "line": 9, "first_line": 8},
        ],
        "stacks": [[0, 2], [1, 2], [0, 99]],
    }
    matrix, funcs = function_matrix(stacks)
    assert funcs.function == ["f", "g"] and funcs.where(0) == "a.py:1"
    assert matrix.tolist() == [[0, 1], [0, 1], [0, -1]]  # an unknown frame id ends its stack


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 300)), min_size=1, max_size=30),
    st.lists(st.integers(0, 1400), min_size=1, max_size=10),
)
def test_coverage_matches_brute_force(spans: list[tuple[int, int]], xs: list[int]):
    s = np.array([a for a, _ in spans], dtype=float)
    e = s + np.array([d for _, d in spans], dtype=float)
    covered, started = packing.coverage(s, e, np.array(xs, dtype=float))
    for x, c, n in zip(xs, covered, started):
        assert c == pytest.approx(sum(max(0.0, min(b, x) - a) for a, b in zip(s, e)))
        assert n == sum(1 for a in s if a < x)


def _reference_energy(s: PowerSeries, a: float, b: float) -> float:
    """The integration rules of traces/energy.py's docstring, written out directly."""
    t = s.t_ns.astype(np.float64)
    if s.window_ns is not None:
        overlap = np.clip(np.minimum(t, b) - np.maximum(t - s.window_ns, a), 0.0, None)
        return float(np.sum(s.watts * overlap) / 1e9)
    lo, hi = max(a, t[0]), min(b, t[-1])
    if hi <= lo:
        return 0.0
    times = np.concatenate(([lo], t[(t > lo) & (t < hi)], [hi]))
    watts = np.interp(times, t, s.watts)
    return float(np.sum((watts[1:] + watts[:-1]) * np.diff(times)) / 2 / 1e9)


def test_the_one_energy_integration_follows_its_rules(tmp_path: Path):
    run = RunData(make_run(tmp_path / "run", telemetry=("powermetrics", "nvml", "rapl"), samples=False))
    rng = np.random.default_rng(3)
    for key, s in power_series(run.telemetry).items():
        for _ in range(10):
            a, b = sorted(rng.uniform(-1e8, run.duration_ns + 1e8, 2))
            cum = cumulative_energy(s, np.array([a, b]))
            assert cum[1] - cum[0] == pytest.approx(_reference_energy(s, a, b), rel=1e-6, abs=1e-9), key
            expected = _reference_energy(s, int(a), int(b))
            assert series_energy(s, int(a), int(b)) == pytest.approx(expected, rel=1e-6, abs=1e-9), key


def test_pack_round_trip_and_range():
    x = np.array([0, 5, 5, 70000, 4_000_000_000])
    assert _unpack(packing.pack(x, "u4", delta=True)).tolist() == x.tolist()
    with pytest.raises(ValueError):
        packing.pack(np.array([70000]), "u2")


# -- comparison ---------------------------------------------------------------------------------
def test_comparison(tmp_path: Path):
    a = make_run(tmp_path / "a", epochs=3, seed=1)
    b = make_run(tmp_path / "b", epochs=2, seed=2)  # same label as a: told apart by directory
    c = make_run(tmp_path / "c", epochs=3, telemetry=("nvml", "procfs"), backend="torch_cuda", seed=3, samples=False)
    text = build_report([a, b, c], tmp_path / "cmp.html").read_text()
    data = _data(text)
    assert data["kind"] == "compare"
    assert set(data["figures"]) == {"fig-cmp-epochs", "fig-cmp-inference", "fig-cmp-curves", "fig-cmp-energy"}
    boxes = data["figures"]["fig-cmp-epochs"]["data"]
    assert [b["name"] for b in boxes] == [
        "mlx_gpu / seed / synthetic (a)",
        "mlx_gpu / seed / synthetic (b)",
        "torch_cuda / seed / synthetic",
    ]
    assert [len(b["y"]) for b in boxes] == [3, 2, 3]
    energy = data["figures"]["fig-cmp-energy"]["data"]
    assert {t["name"].split(" (")[0] for t in energy} >= {"GPU", "GPU board"}
    assert "Findings side by side" in text and "Headline figures" in text
    assert text.count("<h3>") >= 3


def test_comparison_without_energy(tmp_path: Path):
    a = make_run(tmp_path / "a", telemetry=(), samples=False)
    b = make_run(tmp_path / "b", telemetry=("procfs",), samples=False, backend="torch_cpu")
    text = build_report([a, b], tmp_path / "cmp.html").read_text()
    assert "no run measured power" in text
    assert "fig-cmp-energy" not in _data(text)["figures"]


def test_script_json_cannot_close_its_element():
    from cnnprof.reports.text import script_json

    text = script_json({"a": "</script><!-- ]]> \u2028 & <b>"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!-- ]]> \u2028 & <b>"}


def test_reports_and_exports_import_no_framework(run_dir: Path, tmp_path: Path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cnnprof.reports.html import build_report\n"
        "from cnnprof.traces.export import export_chrome, export_speedscope\n"
        "from cnnprof.traces.reader import RunData\n"
        f"build_report([{str(run_dir)!r}], {str(tmp_path / 'r.html')!r})\n"
        f"build_report([{str(run_dir)!r}, {str(run_dir)!r}], {str(tmp_path / 'c.html')!r})\n"
        f"export_chrome(RunData({str(run_dir)!r}), {str(tmp_path / 't.json')!r})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mlx'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
