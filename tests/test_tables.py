"""The run's end writes run.json and the streams only; the first reader builds the tables
(traces/tables.py). Checked by what is imported and what is on disk, never by timing (the
timing is benchmarks/fixed_cost.py's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import only_run_dir, read_meta

from cnnprof.cli import main
from cnnprof.profiler.observers import standard_observers
from cnnprof.profiler.session import RunSession, SessionOptions
from cnnprof.traces import schema, streams, tables, writer
from cnnprof.traces.reader import RunData

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "pyarrow")

# `cnnprof profile` with its closing step (the first read) replaced: what the process had
# imported when the script's first line ran and when the run's end had written run.json.
PROFILE_UNTIL_THE_END = textwrap.dedent(
    """
    import json, sys
    import cnnprof.cli_profile as cli_profile
    from cnnprof.cli import main

    def at_the_end(session, **kwargs):
        print("END", json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), flush=True)

    cli_profile._explain = at_the_end
    sys.exit(main(["profile", "--telemetry", "procfs", "--out", sys.argv[1], "--", sys.argv[2]]))
    """
)
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    print("START", json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), flush=True)
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        sum(i * i for i in range(1000))
    """
)


def _profile_until_the_end(tmp_path: Path) -> tuple[dict[str, list[str]], Path]:
    driver, script = tmp_path / "driver.py", tmp_path / "script.py"
    driver.write_text(PROFILE_UNTIL_THE_END.format(heavy=HEAVY))
    script.write_text(SCRIPT.format(heavy=HEAVY))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(driver), str(tmp_path / "runs"), str(script)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    marks = {line.split()[0]: json.loads(line.split(maxsplit=1)[1]) for line in done.stdout.splitlines()
             if line.startswith(("START", "END"))}
    return marks, only_run_dir(tmp_path / "runs")


def test_neither_the_start_nor_the_end_of_a_run_imports_pandas_or_pyarrow(tmp_path: Path) -> None:
    marks, run_dir = _profile_until_the_end(tmp_path)
    assert marks == {"START": [], "END": []}
    meta = read_meta(run_dir)
    assert meta["status"] == "complete" and meta["pending"][0] == tables.PENDING_TABLES
    assert meta["profiler"]["samples"] > 0 and meta["telemetry"]["rows"] > 0  # said without the tables
    assert not list(run_dir.glob("*.parquet")) and (run_dir / streams.SAMPLES_STREAM).exists()


def test_a_process_killed_between_its_end_and_the_first_read_loses_nothing(tmp_path: Path) -> None:
    """`cnnprof profile` whose closing step never ran (the process died there): every reader
    builds the tables from the streams, and they hold what run.json says was recorded."""
    _, run_dir = _profile_until_the_end(tmp_path)
    meta = read_meta(run_dir)
    run = RunData(run_dir)
    assert run.record.status == "complete" and run.record.pending == []
    assert len(run.samples) == meta["profiler"]["samples"]
    assert len(run.telemetry) == meta["telemetry"]["rows"]
    assert set(run.telemetry["source"]) == {"procfs"} and run.telemetry["t_ns"].is_monotonic_increasing
    assert not list(run_dir.glob("*.stream.*")) and (run_dir / schema.PYISESSION).exists()
    assert read_meta(run_dir)["pending"] == []


def _ended_run(root: Path) -> Path:
    """A `cnnprof run`-like session (epochs, spans, stack samples, procfs telemetry) that ended."""
    opts = SessionOptions(out_root=root, kind="train", label="unbuilt", argv=["cnnprof", "run"])
    observers = standard_observers(
        profiler="sampler", profile_interval_ms=1.0, telemetry="procfs", telemetry_interval_ms=50
    )
    with RunSession(opts, observers) as session:
        rec = session.recorder
        for epoch in (1, 2):
            rec.epoch = epoch
            with rec.span("epoch", f"epoch {epoch}"), rec.span("train") as train:
                end = time.perf_counter() + 0.15
                while time.perf_counter() < end:
                    sum(i * i for i in range(500))
            session.add_epoch_metrics({"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": 0.5, "val_loss": 1.0,
                                       "val_acc": 0.5, "epoch_s": train.seconds, "images_per_s": 100.0})
        session.add_inference("batched", 0, 10, 0.01, 9)
    return session.run_dir


@pytest.fixture(scope="module")
def ended_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _ended_run(tmp_path_factory.mktemp("runs"))


def _copy(run_dir: Path, tmp_path: Path, name: str = "copy") -> Path:
    return shutil.copytree(run_dir, tmp_path / name)


def _contents(run: RunData) -> dict[str, object]:
    return {
        "spans": run.spans[["kind", "name", "start_ns", "end_ns"]].values.tolist(),
        "samples": run.samples.values.tolist(),
        "frames": run.stacks["frames"],
        "telemetry": len(run.telemetry),
        "metrics": run.metrics.to_dict("list"),
        "inference": run.inference.to_dict("list"),
        "summary": run.record.summary,
        "notes": run.notes,
    }


def test_the_end_leaves_streams_and_the_first_reader_builds_the_tables(ended_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(ended_run, tmp_path)
    assert not list(run_dir.glob("*.parquet")) and read_meta(run_dir)["pending"][0] == tables.PENDING_TABLES
    first = RunData(run_dir)
    for name in (schema.SPANS, schema.SAMPLES, schema.STACKS, schema.TELEMETRY, schema.METRICS, schema.INFERENCE):
        assert (run_dir / name).exists(), name
    assert not list(run_dir.glob("*.stream.*"))
    assert list(first.metrics["epoch"]) == [1, 2] and list(first.inference["correct"]) == [9]
    assert set(first.spans["kind"]) >= {"epoch", "train"} and len(first.samples) > 0
    # Each epoch's energy is the reader's to add (procfs measures no power here: none), and the
    # summary is the run's end's, rewritten with it.
    assert first.record.summary["epochs_completed"] == 2
    second = RunData(run_dir)  # from the tables now
    assert _contents(second) == _contents(first)


@pytest.mark.parametrize("command", ["diagnose", "report", "export"])
def test_every_reading_command_reads_a_run_whose_tables_were_never_built(
    ended_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, command: str
) -> None:
    run_dir = _copy(ended_run, tmp_path)
    extra = {"export": ["--format", "chrome", "-o", str(tmp_path / "t.json")], "report": [], "diagnose": ["--json"]}
    assert main([command, str(run_dir), *extra[command]]) == 0
    out = capsys.readouterr().out
    assert not list(run_dir.glob("*.stream.*")) and (run_dir / schema.SPANS).exists()
    if command == "diagnose":  # the same answer as from a copy built first
        built = _copy(ended_run, tmp_path, "built")
        RunData(built)
        assert main([command, str(built), "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == json.loads(out)
    elif command == "export":
        events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
        assert any(e.get("name") == "train" for e in events)
    else:
        assert (run_dir / schema.REPORT).exists() or Path(out.strip()).exists()


class _Killed(BaseException):
    """The reader's process dying mid-build (not an OSError, which `store` answers itself)."""


def test_a_reader_killed_at_any_write_of_the_build_loses_nothing(
    ended_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _contents(RunData(_copy(ended_run, tmp_path, "reference")))
    original = writer.replace_atomically
    writes = 0
    while True:
        run_dir = _copy(ended_run, tmp_path, f"killed-at-{writes}")
        calls = [0]

        def dying(path: Path, write: object, limit: int = writes, calls: list[int] = calls) -> None:
            if calls[0] == limit:
                raise _Killed
            calls[0] += 1
            original(path, write)  # type: ignore[arg-type]

        monkeypatch.setattr(writer, "replace_atomically", dying)
        try:
            RunData(run_dir)
            finished = True
        except _Killed:
            finished = False
        monkeypatch.setattr(writer, "replace_atomically", original)
        assert _contents(RunData(run_dir)) == reference, f"killed at write {writes}"
        assert not list(run_dir.glob("*.stream.*"))
        if finished:
            break
        writes += 1
    assert writes >= 7  # six tables and stacks.json, profile.pyisession, run.json: each one a moment


def test_a_reader_killed_before_it_removed_the_streams_reads_the_tables(
    ended_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _contents(RunData(_copy(ended_run, tmp_path, "reference")))
    run_dir = _copy(ended_run, tmp_path)

    def dying(run_dir: Path) -> None:
        raise _Killed

    monkeypatch.setattr(streams, "remove_streams", dying)
    with pytest.raises(_Killed):
        RunData(run_dir)
    monkeypatch.undo()
    assert read_meta(run_dir)["pending"] == [] and list(run_dir.glob("*.stream.*"))  # both there now
    assert _contents(RunData(run_dir)) == reference


def test_a_directory_that_cannot_be_written_is_read_from_its_streams(
    ended_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _contents(RunData(_copy(ended_run, tmp_path, "reference")))
    run_dir = _copy(ended_run, tmp_path)
    before = sorted(p.name for p in run_dir.iterdir())

    def refused(path: Path, write: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(writer, "replace_atomically", refused)
    assert _contents(RunData(run_dir)) == reference  # built in memory
    assert sorted(p.name for p in run_dir.iterdir()) == before  # and left for a reader that can write
    assert read_meta(run_dir)["pending"][0] == tables.PENDING_TABLES


def test_two_readers_at_once_read_the_same_run(ended_run: Path, tmp_path: Path) -> None:
    """The run's own closing lines and a `cnnprof report` elsewhere: one builds, the other waits
    on run.json's lock and reads what was built (whichever order the threads run in)."""
    from concurrent.futures import ThreadPoolExecutor

    reference = _contents(RunData(_copy(ended_run, tmp_path, "reference")))
    run_dir = _copy(ended_run, tmp_path)
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda _: _contents(RunData(run_dir)), range(2)))
    assert got == [reference, reference]
    assert not list(run_dir.glob("*.stream.*")) and read_meta(run_dir)["pending"] == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def test_a_killed_training_run_is_recovered_with_its_epochs_and_summary(tmp_path: Path) -> None:
    """The state a SIGKILL leaves after two epochs (the streams flushed, run.json `running`), made
    by copying a live run's directory and giving it a dead pid."""
    opts = SessionOptions(out_root=tmp_path / "runs", kind="train", label="killed", argv=["cnnprof", "run"])
    with RunSession(opts) as session:
        for epoch in (1, 2):
            session.recorder.epoch = epoch
            with session.recorder.span("train") as train:
                pass
            session.add_epoch_metrics({"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": 0.5, "val_loss": 1.0,
                                       "val_acc": 0.5, "epoch_s": train.seconds, "images_per_s": 100.0})
        session.flusher.flush()
        killed = _copy(session.run_dir, tmp_path)
    meta = read_meta(killed)
    (killed / schema.RUN_JSON).write_text(json.dumps({**meta, "pid": _dead_pid()}))
    run = RunData(killed)
    assert run.record.status == "killed"
    assert list(run.metrics["epoch"]) == [1, 2]
    assert run.record.summary["epochs_completed"] == 2 and run.record.summary["final_train_loss"] == 0.5
    assert read_meta(killed)["summary"]["epochs_completed"] == 2 and not list(killed.glob("*.stream.*"))


def test_the_closing_lines_say_the_end_and_the_explaining_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    script = tmp_path / "script.py"
    script.write_text("print('hi')\n")
    out = tmp_path / "runs"
    assert main(["profile", "--no-report", "--telemetry", "none", "--out", str(out), "--", str(script)]) == 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "the run's end took" in x]
    end_s, explain_s = (float(x.split(" s")[0].split()[-1]) for x in line.split(";"))
    assert end_s >= 0 and explain_s >= 0 and "tables and diagnosis" in line
    assert (only_run_dir(out) / schema.SPANS).exists()  # the closing lines were the first read
