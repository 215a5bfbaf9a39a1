"""The stack profilers: samples on the run's clock, the frame table, the raw files, and a run
that ends by an exception or Ctrl-C still leaving them."""

from __future__ import annotations

import json
import pstats
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from cnnprof.profiler.session import RunSession, SessionOptions
from cnnprof.profiler.stack_tables import parse_identifier
from cnnprof.profiler.stacks import (
    LibraryClassifier,
    StackObserver,
    records_to_tables,
)
from cnnprof.traces import schema
from cnnprof.traces.reader import RunData


def busy_alpha(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def busy_beta(seconds: float) -> int:
    return busy_alpha(seconds)


def sample_count(observer: StackObserver) -> int:
    """Samples taken so far by the observer's signal sampler or pyinstrument (its live session)."""
    if observer._sampler is not None:
        return observer._sampler.sample_count
    session = observer._pyi._active_session if observer._pyi is not None else None
    return len(session.frame_records) if session is not None else 0


def spin_until_sampled(observer: StackObserver, n: int, function: Callable[[float], int] = busy_alpha) -> None:
    """Runs `function` in short bursts until the profiler has taken `n` samples: a count, not a
    time, so a slow or loaded machine only makes it take longer (the 60 s cap only stops a broken
    profiler)."""
    deadline = time.monotonic() + 60
    while sample_count(observer) < n and time.monotonic() < deadline:
        function(0.002)


def _opts(tmp_path: Path) -> SessionOptions:
    return SessionOptions(out_root=tmp_path, kind="script", label="stacks", argv=[])


# -- the conversion ------------------------------------------------------------------------------


def test_parse_identifier() -> None:
    assert parse_identifier("step\x00/u/train.py\x0010\x01cTrainer\x01l14") == (
        "Trainer.step",
        "/u/train.py",
        14,
        10,
    )
    assert parse_identifier("TensorBase.item\x00<built-in>\x000") == ("TensorBase.item", "<built-in>", 0, 0)
    assert parse_identifier("main\x00/u/a.py\x005") == ("main", "/u/a.py", 5, 5)


def test_records_to_tables_places_samples_on_the_run_clock() -> None:
    root = "MainThread\x00<thread>\x00123"
    main = "main\x00/u/train.py\x001\x01l20"
    step = "step\x00/u/train.py\x0010\x01l14"
    item = "Tensor.item\x00<built-in>\x000"
    lib = "forward\x00/x/site-packages/torch/nn/mod.py\x0050\x01l60"
    records = [
        ([root, main, step], 0.001),
        ([root, main, step, item], 0.0025),
        ([root, main, lib], 0.001),
        ([root, main, step], 0.0005),
    ]
    anchor, t0 = 5_000_000_000, 4_000_000_000
    cols, stacks = records_to_tables(records, anchor, t0, LibraryClassifier(prefixes=("/x/",)))
    # t_ns = interval start relative to t0; intervals tile from the anchor
    assert cols["t_ns"] == [1_000_000_000, 1_001_000_000, 1_003_500_000, 1_004_500_000]
    assert cols["dt_ns"] == [1_000_000, 2_500_000, 1_000_000, 500_000]
    assert cols["stack_id"] == [0, 1, 2, 0]
    frames = stacks["frames"]
    names = [f["function"] for f in frames]
    assert names == ["main", "step", "Tensor.item", "forward"]  # <thread> root dropped
    assert [f["line"] for f in frames] == [20, 14, 0, 60]
    assert [f["first_line"] for f in frames] == [1, 10, 0, 50]
    assert [f["library"] for f in frames] == [False, False, True, True]
    assert stacks["stacks"] == [[0, 1], [0, 1, 2], [0, 3]]


def test_library_classifier() -> None:
    is_lib = LibraryClassifier()
    import torch.nn  # noqa: F401  (a real site-packages path)

    assert is_lib(sys.modules["torch.nn"].__file__)
    assert is_lib(json.__file__)  # stdlib
    assert is_lib("<frozen importlib._bootstrap>")
    assert not is_lib(__file__)
    import cnnprof.profiler.session as session_mod

    assert is_lib(session_mod.__file__)  # cnnprof's machinery
    assert not is_lib(str(Path(session_mod.__file__).parents[1] / "models" / "loops" / "torch_loop.py"))


# -- the observer in a session ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sampler", "pyinstrument"])
def test_samples_line_up_with_spans(tmp_path: Path, mode: str) -> None:
    observer = StackObserver(mode, interval_ms=1.0)
    with RunSession(_opts(tmp_path), [observer]) as session:
        spin_until_sampled(observer, 10)
        with session.recorder.span("phase", "beta"):
            spin_until_sampled(observer, sample_count(observer) + 50, busy_beta)
        spin_until_sampled(observer, sample_count(observer) + 10)
    run = RunData(session.run_dir)
    assert run.meta["profiler"]["timeline"] == mode
    assert run.meta["profiler"]["samples"] >= 70
    for name in (schema.SAMPLES, schema.STACKS, schema.PYISESSION):
        assert (session.run_dir / name).exists()
    samples, stacks, spans = run.samples, run.stacks, run.spans
    assert list(samples.columns) == ["t_ns", "dt_ns", "stack_id"]
    # tiled: each sample starts where the previous ended
    ends = (samples["t_ns"] + samples["dt_ns"]).to_numpy()
    assert (samples["t_ns"].to_numpy()[1:] == ends[:-1]).all()
    assert samples["t_ns"].iloc[0] >= 0
    # duration_ns is taken just before the observers stop; the profiler samples until its stop
    assert (samples["t_ns"] + samples["dt_ns"]).max() <= run.meta["duration_ns"] + 50_000_000

    frames = stacks["frames"]
    beta_ids = {i for i, f in enumerate(frames) if f["function"] == "busy_beta"}
    assert beta_ids and all(frames[i]["file"] == __file__ for i in beta_ids)
    assert not any(frames[i]["library"] for i in beta_ids)
    in_beta = samples[[bool(beta_ids & set(stacks["stacks"][s])) for s in samples["stack_id"]]]
    span = spans[spans["kind"] == "phase"].iloc[0]
    # Exact, on the one clock: a sample in busy_beta was taken (ends) inside the span, and every
    # one after the first starts at the end of an earlier one taken inside busy_beta.
    assert (in_beta["t_ns"] + in_beta["dt_ns"]).max() <= span["end_ns"]
    assert (in_beta["t_ns"].iloc[1:] >= span["start_ns"]).all()
    # Inside the span the code is busy_beta but for the `with` lines and the loop that counts the
    # samples between 2 ms bursts (microseconds each), however slow the machine.
    ends = samples["t_ns"] + samples["dt_ns"]
    during = samples[(ends >= span["start_ns"]) & (ends <= span["end_ns"])]
    assert len(in_beta) >= 0.8 * len(during) and len(in_beta) >= 40

    from pyinstrument.session import Session

    loaded = Session.load(session.run_dir / schema.PYISESSION)
    assert loaded.sample_count == len(samples)
    assert loaded.root_frame() is not None


def test_cprofile_writes_pstats(tmp_path: Path) -> None:
    with RunSession(_opts(tmp_path), [StackObserver("cprofile")]) as session:
        busy_beta(0.02)
    stats = pstats.Stats(str(session.run_dir / schema.PSTATS))
    assert any(func[2] == "busy_beta" for func in stats.stats)  # type: ignore[attr-defined]
    assert not (session.run_dir / schema.SAMPLES).exists()
    assert RunData(session.run_dir).meta["profiler"]["timeline"] is None


def test_both_gives_a_timeline_and_a_table(tmp_path: Path) -> None:
    observer = StackObserver("both", interval_ms=1.0)
    with RunSession(_opts(tmp_path), [observer]) as session:
        spin_until_sampled(observer, 5, busy_beta)
    run = RunData(session.run_dir)
    assert run.meta["profiler"]["timeline"] == "sampler"
    stats = pstats.Stats(str(session.run_dir / schema.PSTATS))
    assert any(func[2] == "busy_beta" for func in stats.stats)  # type: ignore[attr-defined]
    assert len(run.samples) >= 5
    names = {f["function"] for f in run.stacks["frames"]}
    assert "busy_alpha" in names
    from pyinstrument.session import Session

    assert Session.load(session.run_dir / schema.PYISESSION).root_frame() is not None


def test_none_writes_nothing(tmp_path: Path) -> None:
    with RunSession(_opts(tmp_path), [StackObserver("none")]) as session:
        busy_alpha(0.001)
    for name in (schema.SAMPLES, schema.STACKS, schema.PYISESSION, schema.PSTATS):
        assert not (session.run_dir / name).exists()


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="profiler mode"):
        StackObserver("perf")


@pytest.mark.parametrize(("exc", "status"), [(RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "interrupted")])
def test_samples_are_kept_when_the_run_ends_badly(tmp_path: Path, exc: BaseException, status: str) -> None:
    observer = StackObserver("both" if status == "failed" else "sampler")
    with pytest.raises(type(exc)), RunSession(_opts(tmp_path), [observer]) as session:
        spin_until_sampled(observer, 3)
        raise exc
    meta = json.loads((session.run_dir / schema.RUN_JSON).read_text())
    assert meta["status"] == status
    assert meta["profiler"]["samples"] > 0
    assert len(RunData(session.run_dir).samples) == meta["profiler"]["samples"]
    assert len(pd.read_parquet(session.run_dir / schema.SAMPLES)) == meta["profiler"]["samples"]  # built, kept
    assert sys.getprofile() is None  # nothing left installed
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_long_run_keeps_its_samples_but_not_the_raw_session(tmp_path: Path, monkeypatch) -> None:
    import cnnprof.profiler.stacks as stacks

    monkeypatch.setattr(stacks, "PYISESSION_MAX_SAMPLES", 5)
    observer = StackObserver("pyinstrument", interval_ms=1.0)
    with RunSession(_opts(tmp_path), [observer]) as session:
        spin_until_sampled(observer, 6)
    run = RunData(session.run_dir)
    assert len(run.samples) > 5
    assert not (session.run_dir / schema.PYISESSION).exists()
    assert any(schema.PYISESSION in note and "left out" in note for note in run.meta["profiler"]["notes"])


# -- the signal sampler ----------------------------------------------------------------------------


def _sampled_lines(run: RunData) -> dict[tuple[str, int], float]:
    """Seconds per (leaf function, leaf line)."""
    frames, stacks = run.stacks["frames"], run.stacks["stacks"]
    out: dict[tuple[str, int], float] = {}
    for sid, dt in zip(run.samples["stack_id"], run.samples["dt_ns"]):
        leaf = frames[stacks[sid][-1]]
        key = (leaf["function"], leaf["line"])
        out[key] = out.get(key, 0.0) + dt / 1e9
    return out


def test_sampler_charges_a_long_c_call_to_its_calling_line(tmp_path: Path) -> None:
    """A C call runs no bytecode, so no handler: its whole time lands on the line that made it."""
    with RunSession(_opts(tmp_path), [StackObserver("sampler", interval_ms=1.0)]) as session:
        t = time.perf_counter()
        sum(range(30_000_000))  # one C call, ~0.1-0.5 s
        c_call_s = time.perf_counter() - t
        line = sys._getframe().f_lineno - 2
    run = RunData(session.run_dir)
    on_line = _sampled_lines(run).get((test_sampler_charges_a_long_c_call_to_its_calling_line.__name__, line), 0.0)
    # The sample that ends after the call starts at the previous sample (about when `t` is read)
    # and ends before the second clock read, so it covers the call; the line's other samples
    # (between the clock reads and the call) add at most a few intervals, more if the process lost
    # the CPU right there, which a 10 % + 50 ms margin absorbs. (Before the handler ignored its own
    # frame, a thread taking the GIL inside the handler put the call's time on the handler.)
    assert c_call_s * 0.9 <= on_line <= c_call_s * 1.1 + 0.05
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL  # handler restored


def test_sampler_falls_back_to_pyinstrument_when_sigalrm_is_taken(tmp_path: Path) -> None:
    def theirs(signum, frame) -> None:  # a script's own alarm handler
        pass

    previous = signal.signal(signal.SIGALRM, theirs)
    observer = StackObserver("sampler", interval_ms=1.0)
    try:
        with RunSession(_opts(tmp_path), [observer]) as session:
            spin_until_sampled(observer, 10)
        assert signal.getsignal(signal.SIGALRM) is theirs  # untouched
    finally:
        signal.signal(signal.SIGALRM, previous)
    meta = RunData(session.run_dir).meta["profiler"]
    assert meta["timeline"] == "pyinstrument"
    assert any("SIGALRM already has a handler" in note for note in meta["notes"])
    assert meta["samples"] >= 10


def test_sampler_leaves_a_handler_the_profiled_code_installed(tmp_path: Path) -> None:
    seen: list[int] = []

    def theirs(signum, frame) -> None:
        seen.append(signum)

    observer = StackObserver("sampler", interval_ms=1.0)
    try:
        with RunSession(_opts(tmp_path), [observer]) as session:
            spin_until_sampled(observer, 6)
            signal.signal(signal.SIGALRM, theirs)
            busy_alpha(0.03)
        assert signal.getsignal(signal.SIGALRM) is theirs
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    meta = RunData(session.run_dir).meta["profiler"]
    assert any("installed its own SIGALRM handler" in note for note in meta["notes"])
    assert meta["samples"] > 5  # the samples before the takeover are kept
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def _spin_in_generator() -> object:
    while True:
        busy_alpha(0.004)
        yield


def resume_from_a(gen: object) -> None:
    next(gen)  # type: ignore[call-overload]


def resume_from_b(gen: object) -> None:
    next(gen)  # type: ignore[call-overload]


def test_sampler_stacks_follow_a_generator_resumed_by_different_callers(tmp_path: Path) -> None:
    """The sampler reuses the unchanged part of the previous stack; a generator's caller changes
    between resumptions, so its stacks must still name the caller of the moment."""
    gen = _spin_in_generator()
    with RunSession(_opts(tmp_path), [StackObserver("sampler", interval_ms=0.5)]) as session:
        for _ in range(25):
            resume_from_a(gen)
            resume_from_b(gen)
    run = RunData(session.run_dir)
    frames, stacks = run.stacks["frames"], run.stacks["stacks"]
    seconds = {"resume_from_a": 0.0, "resume_from_b": 0.0}
    for sid, dt in zip(run.samples["stack_id"], run.samples["dt_ns"]):
        names = [frames[i]["function"] for i in stacks[sid]]
        if "_spin_in_generator" in names:
            parent = names[names.index("_spin_in_generator") - 1]
            assert parent in seconds, names  # a generator's parent is whoever resumed it
            seconds[parent] += dt / 1e9
    # Both callers ran the generator for the same wall time (25 x 4 ms each, in turns); a stale
    # parent would give one of them all of it. The margin absorbs a 50 ms stall of the process
    # during one caller's turn.
    share_a = seconds["resume_from_a"] / (seconds["resume_from_a"] + seconds["resume_from_b"])
    assert 0.25 < share_a < 0.75


def test_sampler_handler_recovers_from_an_interrupt_inside_it() -> None:
    """Ctrl-C is handled between bytecodes, the handler's own included: the KeyboardInterrupt must
    propagate, and sampling must go on (a script may catch it and carry on training)."""
    from cnnprof.profiler.sampler import SignalSampler

    class InterruptedFrame:  # a frame whose caller chain cannot be read: Ctrl-C arrives there
        f_code = busy_alpha.__code__
        f_lasti = 0

        @property
        def f_back(self) -> None:
            raise KeyboardInterrupt

    sampler = SignalSampler(0.001)
    handler = sampler._make_handler()
    handler(signal.SIGALRM, sys._getframe())
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGALRM, InterruptedFrame())
    handler(signal.SIGALRM, sys._getframe())
    assert sampler.sample_count == 2
    records = sampler.records()
    # the same stack (but for the line in this test), rebuilt from scratch after the interrupt
    assert records[0][0][:-1] == records[1][0][:-1]
    assert "test_sampler_handler_recovers" in records[1][0][-1]


# -- the streams ------------------------------------------------------------------------------------


def test_samples_and_spans_reach_their_streams_while_the_run_goes(tmp_path: Path) -> None:
    """What a kill would leave: the streams hold the samples and spans up to the last flush, and
    the reader makes the same tables of them as the run's own end does."""
    from cnnprof.traces.streams import SAMPLES_STREAM, SPANS_STREAM, read_sample_stream, read_span_stream

    observer = StackObserver("sampler", interval_ms=1.0)
    with RunSession(_opts(tmp_path), [observer]) as session:
        with session.recorder.span("phase", "beta"):
            spin_until_sampled(observer, 30)
        taken = observer._sampler.sample_count
        session.flusher.flush()  # what the flusher thread does every half second
        t0 = session.t0_perf_ns
        streamed = read_sample_stream(session.run_dir / SAMPLES_STREAM, t0)
        spans = read_span_stream(session.run_dir / SPANS_STREAM, t0)
    assert streamed is not None and spans is not None
    columns, stacks = streamed
    taken = len(columns["t_ns"])  # all the sampler had, and maybe one more before the flush
    assert taken >= 30
    assert spans["name"] == ["beta"]
    run = RunData(session.run_dir)
    # the end of the run writes the tables and removes the streams
    assert not (session.run_dir / SAMPLES_STREAM).exists() and not (session.run_dir / SPANS_STREAM).exists()
    final = run.samples.iloc[:taken]
    assert list(final["t_ns"]) == columns["t_ns"] and list(final["dt_ns"]) == columns["dt_ns"]
    names = lambda st, sid: [st["frames"][i]["function"] for i in st["stacks"][sid]]  # noqa: E731
    assert [names(stacks, s) for s in columns["stack_id"]] == [names(run.stacks, s) for s in final["stack_id"]]


def test_pyinstrument_streams_its_samples_while_it_runs_so_a_killed_run_keeps_them(tmp_path: Path) -> None:
    """The directory as a SIGKILL would leave it mid-run (a copy taken while the run goes, given a
    dead pid): the recovered run has pyinstrument's samples up to the last flush."""
    import shutil
    import subprocess

    from cnnprof.traces import streams

    observer = StackObserver("pyinstrument", interval_ms=1.0)
    with RunSession(_opts(tmp_path / "runs"), [observer]) as session:
        spin_until_sampled(observer, 20, busy_beta)
        session.flusher.flush()
        taken = sample_count(observer)
        streamed = streams.read_sample_stream(session.run_dir / streams.SAMPLES_STREAM, session.t0_perf_ns)
        killed = shutil.copytree(session.run_dir, tmp_path / "killed")
    assert streamed is not None and len(streamed[0]["t_ns"]) >= 20
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    meta = json.loads((killed / schema.RUN_JSON).read_text())
    (killed / schema.RUN_JSON).write_text(json.dumps({**meta, "pid": dead.pid}))
    run = RunData(killed)
    assert run.record.status == "killed"
    assert 20 <= len(run.samples) <= taken
    assert "busy_beta" in {f["function"] for f in run.stacks["frames"]}
    # and the run that ended has every sample, as pyinstrument's own session file counts them
    from pyinstrument.session import Session

    assert len(RunData(session.run_dir).samples) == Session.load(session.run_dir / schema.PYISESSION).sample_count
