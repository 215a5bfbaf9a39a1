from __future__ import annotations

import time

from cnnprof.profiler.spans import SpanRecorder


def test_span_records_kind_position_and_order():
    rec = SpanRecorder()
    rec.epoch, rec.batch = 2, 7
    with rec.span("forward") as outer:
        time.sleep(0.002)
    rec.record("sync", "Tensor.item", outer._start + 10, outer._start + 20, caller="train.py:12")
    cols = rec.columns(t0_ns=outer._start)
    # sorted by start: the recorded sync started after the forward span
    assert cols["kind"] == ["forward", "sync"]
    assert cols["name"] == ["forward", "Tensor.item"]
    assert cols["start_ns"] == [0, 10]
    assert cols["epoch"] == [2, 2] and cols["batch"] == [7, 7]
    assert cols["caller"] == [None, "train.py:12"]
    assert outer.seconds >= 0.002
    assert cols["end_ns"][0] == int(outer.seconds * 1e9) or abs(cols["end_ns"][0] - outer.seconds * 1e9) < 2


def test_loop_sync_phase_is_left_to_the_hooks_when_they_are_installed():
    rec = SpanRecorder()
    with rec.sync("item"):
        pass
    rec.sync_hooked = True
    with rec.sync("item"):
        pass
    assert [r[0] for r in rec.rows] == ["sync"]


def test_attrs_are_stored_as_json():
    rec = SpanRecorder()
    with rec.span("batch", "train", {"images": 512}):
        pass
    assert rec.columns(0)["attrs"] == ['{"images": 512}']
