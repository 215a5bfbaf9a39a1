"""The live view's reading of a run (constructed records, a fake clock) and its drawing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from cnnprof.errors import UserError
from cnnprof.live import verdict
from cnnprof.live.panel import render
from cnnprof.live.state import SPANS_STREAM, TELEMETRY_STREAM, LiveReader, StepTracker
from cnnprof.live.view import status_line, watch
from cnnprof.reports.diagnosis import device_idle, input, sync
from cnnprof.reports.diagnosis import verdict as diagnosis_verdict

MS = 1_000_000
T0 = 10_000 * MS


def _run_dir(tmp_path: Path, status: str = "running", **meta: object) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    record = {
        "status": status,
        "kind": "train",
        "t0_perf_ns": T0,
        "pid": os.getpid(),
        "backend": {"name": "torch_cuda"},
    }
    (run_dir / "run.json").write_text(json.dumps({**record, **meta}))
    return run_dir


def _step(start: int, ms: dict[str, int], device: str = "cuda") -> list[tuple]:
    """One `batch train` span with its parts laid end to end, then the batch row (the recorder
    appends a span when it ends, so children come first)."""
    rows, t = [], start
    for part, n in ms.items():
        attrs = {"device": device} if part == "sync" else None
        rows.append((part, part, t, t + n * MS, 1, 0, None, attrs))
        t += n * MS
    rows.append(("batch", "train", start, t + 2 * MS, 1, 0, None, None))  # 2 ms nobody claims
    return rows


def test_steps_splits_and_rates_from_span_rows(tmp_path: Path) -> None:
    rows: list[tuple] = []
    clock = [T0]
    reader = LiveReader(_run_dir(tmp_path), span_rows=lambda: rows, clock=lambda: clock[0])
    assert reader.tick().steps == 0 and reader.state.steps_per_s is None
    start = T0
    for _ in range(10):
        rows += _step(start, {"data": 1, "forward": 3, "backward": 4, "optimizer": 1, "sync": 9})
        start += 20 * MS
    clock[0] = start
    st = reader.tick()
    assert st.steps == 10 and st.syncs == 10
    assert st.last_step is not None and st.last_step.seconds == pytest.approx(0.020)
    assert st.last_step.split == pytest.approx(
        {"data": 0.001, "forward": 0.003, "backward": 0.004, "optimizer": 0.001, "sync": 0.009, "other": 0.002}
    )
    assert st.steps_per_s == pytest.approx(50.0, rel=0.12)  # 9 intervals over the 0.18 s since the first
    assert verdict.live_verdict(st).label == "sync-bound"
    clock[0] = start + 10_000 * MS  # ten seconds without a step: the rate falls to nothing
    assert reader.tick().steps_per_s == 0.0 and reader.state.steps == 10


def test_sync_nested_in_a_part_counts_once_and_cpu_reads_are_no_syncs() -> None:
    tracker = StepTracker()
    tracker.feed(
        [
            ("sync", "item", 5 * MS, 7 * MS, 1, 0, "a.py:1", {"device": "cuda"}),
            ("sync", "item", 8 * MS, 9 * MS, 1, 0, "a.py:2", {"device": "cpu"}),
            ("optimizer", "optimizer", 4 * MS, 10 * MS, 1, 0, None, None),
            ("batch", "train", 0, 10 * MS, 1, 0, None, None),
        ]
    )
    (step,) = tracker.take()
    assert step.split["sync"] == pytest.approx(0.002) and step.split["optimizer"] == pytest.approx(0.004)
    assert tracker.sync_count == 1


def test_marks_make_steps_and_outrank_optimizer_hooks() -> None:
    tracker = StepTracker()
    tracker.feed([("hook", "optimizer", t * MS, t * MS + 1, None, None, None, None) for t in (0, 10, 20)])
    assert tracker.count == 2
    tracker.feed([("hook", "mark", t * MS, t * MS, None, None, None, None) for t in (30, 45, 60)])
    steps = tracker.take()
    assert [round(s.seconds, 3) for s in steps] == [0.01, 0.01, 0.015, 0.015]
    tracker.feed([("hook", "optimizer", 70 * MS, 71 * MS, None, None, None, None)])
    assert tracker.count == 4  # once marks are seen, optimizer hooks no longer delimit steps


def test_telemetry_tail_reads_only_whole_new_lines(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    stream = run_dir / TELEMETRY_STREAM
    stream.write_text("t_ns,source,metric,value\n1,nvml,gpu_util_pct,40.0\n2,nvml,sm_clock_mhz,1980.0\n3,nvml,gpu_")
    reader = LiveReader(run_dir, clock=lambda: T0)
    st = reader.tick()
    assert st.telemetry == {"nvml.gpu_util_pct": 40.0, "nvml.sm_clock_mhz": 1980.0}
    with stream.open("a") as f:
        f.write("util_pct,90.0\n4,procfs,cpu_busy_pct,oops\n5,nvml,power_w,301.5\n")
    st = reader.tick()
    assert st.telemetry["nvml.gpu_util_pct"] == 90.0 and st.telemetry["nvml.power_w"] == 301.5
    assert list(st.history["nvml.gpu_util_pct"]) == [40.0, 90.0]
    assert "procfs.cpu_busy_pct" not in st.telemetry  # the malformed row is skipped


def test_verdict_thresholds_are_the_diagnosis_ones() -> None:
    assert verdict.SYNC_BOUND_SHARE == sync.SYNC_BOUND_SHARE
    assert verdict.INPUT_BOUND_SHARE == input.INPUT_BOUND_SHARE
    assert verdict.DEVICE_IDLE_PCT == device_idle.DEVICE_IDLE_PCT
    assert verdict.SYNC_DEVICE_BUSY_PCT == sync.SYNC_DEVICE_BUSY_PCT
    assert verdict.DEVICE_WAIT_SHARE == diagnosis_verdict.DEVICE_WAIT_SHARE


@pytest.mark.parametrize(
    ("parts", "device", "gpu_util", "label"),
    [
        ({"data": 10, "forward": 10}, "cuda", 90.0, "input-bound"),
        ({"forward": 5, "sync": 15}, "cuda", 20.0, "sync-bound"),
        ({"forward": 5, "sync": 15}, "cuda", 95.0, "compute-bound"),  # the device was busy through the waits
        ({"forward": 10, "backward": 10}, "cuda", 20.0, "launch-bound"),
        ({"forward": 10, "backward": 10}, "cuda", 95.0, "compute-bound"),
        ({"forward": 8, "sync": 12}, "cuda", None, "sync-bound"),
        ({"forward": 16, "sync": 4}, "cuda", None, "launch-bound"),
        ({"forward": 5, "sync": 15}, "cpu", None, "compute-bound"),  # reads of CPU tensors are no syncs
        ({"data": 10, "forward": 10}, "cpu", None, "input-bound"),
    ],
)
def test_verdict_follows_the_diagnosis_order(
    tmp_path: Path, parts: dict[str, int], device: str, gpu_util: float | None, label: str
) -> None:
    rows = _step(T0, parts, device) + _step(T0 + 100 * MS, parts, device)
    run_dir = _run_dir(tmp_path)
    telemetry = f"1,nvml,gpu_util_pct,{gpu_util}\n" if gpu_util is not None else ""
    (run_dir / TELEMETRY_STREAM).write_text("t_ns,source,metric,value\n" + telemetry)
    state = LiveReader(run_dir, span_rows=lambda: rows, clock=lambda: T0 + 300 * MS).tick()
    assert verdict.live_verdict(state).label == label


def _panel_text(st: object) -> str:
    console = Console(width=110, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render(st))  # type: ignore[arg-type]
    return console.export_text()


def test_panel_shows_gpu_apple_cpu_power_memory_steps_and_verdict(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    lines = [
        "nvml,sm_clock_mhz,1980",
        "nvml,gpu_util_pct,85",
        "nvml,power_w,250.5",
        "nvml,mem_used_mb,4096",
        "powermetrics,gpu_active_pct,70",
        "powermetrics,gpu_freq_mhz,1398",
        "powermetrics,e_cluster_active_pct,12",
        "powermetrics,p_cluster_active_pct,80",
        "powermetrics,ane_power_w,0.25",
        "powermetrics,cpu_power_w,4.5",
        "procfs,cpu.0.busy_pct,100",
        "procfs,cpu.1.busy_pct,0",
        "procfs,proc_rss_mb,2048",
        "procfs,proc_cpu_pct,95",
    ]
    (run_dir / TELEMETRY_STREAM).write_text("t_ns,source,metric,value\n" + "".join(f"1,{x}\n" for x in lines))
    rows = _step(T0, {"data": 1, "forward": 8, "backward": 8, "optimizer": 1}) * 1
    text = _panel_text(LiveReader(run_dir, span_rows=lambda: rows, clock=lambda: T0 + 50 * MS).tick())
    for expected in (
        "cnnprof live · torch_cuda · running · 00:00",
        "1980 MHz",
        "250.5 W",
        "mem   4.0 GiB",
        "1398 MHz",
        "E-CPU",
        "P-CPU",
        "ANE 0.25 W",
        "2 cores",
        "process 2.00 GiB RSS",
        "1 done",
        "last 20.0 ms",
        "fwd 40 %",
        "so far: compute-bound",
    ):
        assert expected in text, expected


def test_watch_without_a_terminal_prints_lines_until_the_run_ends(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, status="complete")
    console = Console(width=120, record=True, file=open(os.devnull, "w"), force_terminal=False)  # noqa: SIM115
    state = watch(run_dir, console, period_s=0.01)
    assert state.status == "complete"
    assert console.export_text().startswith("cnnprof watch: ") and "complete" in status_line(state)


def test_watch_stops_when_the_runs_process_is_gone(tmp_path: Path) -> None:
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = _run_dir(tmp_path, pid=int(gone.stdout))
    console = Console(file=open(os.devnull, "w"), force_terminal=False)  # noqa: SIM115
    assert watch(run_dir, console, period_s=0.01).status == "running"


def test_watch_needs_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a run directory"):
        watch(tmp_path, Console(file=open(os.devnull, "w")))  # noqa: SIM115


def test_without_the_recorder_steps_come_from_the_span_stream(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    stream = run_dir / SPANS_STREAM
    flush = [list(r) for r in _step(T0, {"data": 2, "forward": 8}) + _step(T0 + 20 * MS, {"data": 2, "forward": 8})]
    stream.write_text(json.dumps({"spans": flush[:3]}) + "\n" + json.dumps({"spans": flush[3:]})[:20])
    reader = LiveReader(run_dir, clock=lambda: T0 + 40 * MS)
    assert reader.tick().steps == 1  # the torn second flush waits for its newline
    with stream.open("a") as f:
        f.write(json.dumps({"spans": flush[3:]})[20:] + "\nnot json\n")
    st = reader.tick()
    assert st.steps == 2 and st.last_step is not None and st.last_step.split["data"] == pytest.approx(0.002)


def test_the_run_json_name_is_the_schemas() -> None:
    from cnnprof.live import state
    from cnnprof.traces import schema

    assert state.RUN_JSON == schema.RUN_JSON


def test_held_output_gives_whole_lines_and_hands_rich_the_real_file() -> None:
    import io

    from cnnprof.live.output import HeldOutput

    real = io.StringIO()
    held = HeldOutput(real)
    held.write("step 1\nstep")
    assert held.take() == "step 1\n" and held.take() == ""
    held.write(" 2\n")
    assert held.take() == "step 2\n"
    held.write("unfinished")
    assert held.take(everything=True) == "unfinished" and real.getvalue() == ""
    held.write("\r 10%\r 20%")
    held.write("\r 30%\n")  # a progress bar: only what the terminal would have left on the line
    assert held.take() == " 30%\n"
    console = Console(file=held)
    console.print("to the real file")  # rich unwraps it: never back into the held buffer
    assert real.getvalue() == "to the real file\n" and held.take(everything=True) == ""


def test_live_without_a_terminal_is_the_usual_line_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cnnprof.cli import main

    script = tmp_path / "steps.py"
    script.write_text("import cnnprof\nfor _ in range(3):\n    cnnprof.step()\nprint('script done')\n")
    argv = ["profile", "--live", "--telemetry", "none", "--profiler", "none", "--no-report", "--out", str(tmp_path)]
    assert main([*argv, "--", str(script)]) == 0
    out, err = capsys.readouterr()
    assert "script done" in out and "cnnprof: profiling" in err
    assert "cnnprof live" not in out + err and "\x1b[" not in out + err  # no panel, no cursor moves
