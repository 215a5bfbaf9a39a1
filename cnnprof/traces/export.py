"""Exports of a run directory to other viewers: Chrome trace events JSON (ui.perfetto.dev,
chrome://tracing) and speedscope (speedscope.app).

Chrome / Perfetto: times are microseconds since the run's t0 (`run.json` t0_perf_ns, on the
`time.perf_counter_ns()` clock; `otherData` carries the anchors). Phases, steps and sync calls are
complete ("X") events on their own threads, the stack samples are "X" slices on a thread of their
own (consecutive samples with the same frame merged, as in the report's flame chart), every
telemetry series is a counter ("C") track. Nothing is downsampled.

speedscope: one "sampled" profile over the function-level stacks (frames are functions: name,
file, first line); consecutive samples with the same stack are one sample whose weight is the sum
of their `dt_ns` (unit nanoseconds), so the Time Order view keeps the run's order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import UserError
from .flame import function_matrix, merge_samples, sample_intervals
from .reader import RunData

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"

PID = 1
THREADS = {  # tid: (name, sort index)
    1: "phases (epoch, train, validation, test)",
    2: "steps (batch, data, forward, backward, optimizer)",
    3: "sync calls",
    4: "other spans",
    10: "stack samples (merged)",
}
PHASE_KINDS = {"epoch", "train", "validation", "test", "single_inference"}
STEP_KINDS = {"batch", "single", "data", "forward", "backward", "optimizer", "step"}


def _tid(kind: str) -> int:
    if kind in PHASE_KINDS:
        return 1
    if kind in STEP_KINDS:
        return 2
    if kind == "sync":
        return 3
    return 4


def _num(value: float) -> str:
    """A JSON number, 3 decimals at most (µs -> ns resolution), no NaN."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def _write_atomically(out: Path, chunks: Iterator[str]) -> Path:
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}; pass another -o FILE") from None
    return out


# -- Chrome trace events -----------------------------------------------------------------------
def chrome_events(run: RunData) -> Iterator[str]:
    """The trace events of a run, each as one JSON object (text)."""
    label = json.dumps(f"cnnprof: {run.label}")
    yield f'{{"ph":"M","name":"process_name","pid":{PID},"tid":0,"args":{{"name":{label}}}}}'
    for tid, name in THREADS.items():
        yield f'{{"ph":"M","name":"thread_name","pid":{PID},"tid":{tid},"args":{{"name":{json.dumps(name)}}}}}'
        yield f'{{"ph":"M","name":"thread_sort_index","pid":{PID},"tid":{tid},"args":{{"sort_index":{tid}}}}}'

    spans = run.spans
    if not spans.empty and {"kind", "start_ns", "end_ns"} <= set(spans.columns):
        spans = spans.dropna(subset=["start_ns", "end_ns"]).sort_values(["start_ns", "end_ns"], ascending=[True, False])
        cols = {
            c: spans[c].tolist() if c in spans else [None] * len(spans)
            for c in ("kind", "name", "start_ns", "end_ns", "epoch", "batch", "caller", "attrs")
        }
        for kind, name, s, e, epoch, batch, caller, attrs in zip(*cols.values()):
            args: dict[str, Any] = {}
            if epoch is not None and epoch == epoch:
                args["epoch"] = int(epoch)
            if batch is not None and batch == batch:
                args["batch"] = int(batch)
            if isinstance(caller, str) and caller:
                args["caller"] = caller
            if isinstance(attrs, str) and attrs:
                try:
                    args["attrs"] = json.loads(attrs)
                except json.JSONDecodeError:
                    args["attrs"] = attrs
            dur = max(int(e) - int(s), 0)
            yield (
                f'{{"ph":"X","name":{json.dumps(str(name or kind))},"cat":{json.dumps(str(kind))},'
                f'"ts":{_num(int(s) / 1e3)},"dur":{_num(dur / 1e3)},"pid":{PID},"tid":{_tid(str(kind))},'
                f'"args":{json.dumps(args)}}}'
            )

    matrix, funcs = function_matrix(run.stacks)
    intervals = sample_intervals(run.samples, matrix.shape[0])
    if len(intervals):
        bars = merge_samples(intervals, matrix)
        names = [json.dumps(f) for f in funcs.function]
        wheres = [json.dumps({"file": funcs.where(i)}) for i in range(len(funcs))]
        for s, e, f in zip(bars.start_ns.tolist(), bars.end_ns.tolist(), bars.frame.tolist()):
            yield (
                f'{{"ph":"X","name":{names[f]},"cat":"sample","ts":{_num(s / 1e3)},"dur":{_num((e - s) / 1e3)},'
                f'"pid":{PID},"tid":10,"args":{wheres[f]}}}'
            )

    tel = run.telemetry
    if not tel.empty and {"t_ns", "source", "metric", "value"} <= set(tel.columns):
        units = run.record.telemetry.metrics
        tel = tel.dropna(subset=["t_ns", "value"])
        for (source, metric), g in tel.groupby(["source", "metric"], sort=True):
            entry = units.get(f"{source}.{metric}") or units.get(metric)
            unit = entry.get("unit") if isinstance(entry, dict) else None
            name = json.dumps(f"{source} {metric}" + (f" ({unit})" if unit else ""))
            g = g.sort_values("t_ns")
            for t, v in zip(g["t_ns"].to_numpy(dtype=np.int64).tolist(), g["value"].to_numpy(dtype=float).tolist()):
                if v == v and abs(v) != float("inf"):
                    yield f'{{"ph":"C","name":{name},"ts":{_num(t / 1e3)},"pid":{PID},"args":{{"value":{v!r}}}}}'


def export_chrome(run: RunData, out: Path) -> Path:
    """Writes the Chrome trace events JSON of `run` to `out` (open it in ui.perfetto.dev)."""
    other = json.dumps(
        {
            "cnnprof_version": __version__,
            "run": run.label,
            "run_dir": str(run.path),
            "t0_perf_ns": run.record.t0_perf_ns,
            "t0_unix_ns": run.record.t0_unix_ns,
            "time_origin": "ts is microseconds since t0_perf_ns (time.perf_counter_ns clock)",
        }
    )

    def chunks() -> Iterator[str]:
        yield '{"displayTimeUnit":"ms","otherData":' + other + ',"traceEvents":[\n'
        first = True
        for event in chrome_events(run):
            yield ("" if first else ",\n") + event
            first = False
        yield "\n]}\n"

    return _write_atomically(out, chunks())


# -- speedscope --------------------------------------------------------------------------------
def speedscope_profile(run: RunData) -> dict[str, Any]:
    matrix, funcs = function_matrix(run.stacks)
    intervals = sample_intervals(run.samples, matrix.shape[0])
    if len(intervals) == 0:
        raise UserError(
            f"{run.path}: no stack samples to export (the run used --profiler cprofile or none, "
            "or samples.parquet is missing); record with --profiler sampler (the default)"
        )
    sampled_by = run.record.profiler.get("timeline") or "stack samples"
    frames = []
    for i in range(len(funcs)):
        frame: dict[str, Any] = {"name": funcs.function[i]}
        if funcs.file[i]:
            frame["file"] = funcs.file[i]
        if funcs.first_line[i]:
            frame["line"] = funcs.first_line[i]
        frames.append(frame)
    stacks = [[int(f) for f in row if f >= 0] for row in matrix.tolist()]
    sid, weight = intervals.stack, intervals.weight_ns
    # Runs of the same stack are one sample (their weights summed); empty stacks are left out.
    new = np.r_[True, sid[1:] != sid[:-1]]
    first = np.flatnonzero(new)
    summed = np.add.reduceat(weight, first) if len(first) else weight
    samples, weights = [], []
    for s, w in zip(sid[first].tolist(), summed.tolist()):
        if stacks[s]:
            samples.append(stacks[s])
            weights.append(int(w))
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": f"{run.label} (main thread, {sampled_by})",
                "unit": "nanoseconds",
                "startValue": int(intervals.start_ns[0]),
                "endValue": int(intervals.end_ns.max()),
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": f"cnnprof: {run.label}",
        "activeProfileIndex": 0,
        "exporter": f"cnnprof {__version__}",
    }


def export_speedscope(run: RunData, out: Path) -> Path:
    """Writes the speedscope file of `run`'s stack samples to `out` (open it in speedscope.app)."""
    profile = speedscope_profile(run)
    return _write_atomically(out, iter([json.dumps(profile, separators=(",", ":")), "\n"]))


def export_command(run_dir: Path, fmt: str, out: Path) -> Path:
    """`cnnprof export RUN_DIR --format {chrome,speedscope} -o FILE`."""
    run = RunData(run_dir)
    if fmt == "chrome":
        return export_chrome(run, out)
    if fmt == "speedscope":
        return export_speedscope(run, out)
    raise UserError(f"unknown export format {fmt!r}: use chrome or speedscope")
