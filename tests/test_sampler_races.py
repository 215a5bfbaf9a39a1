"""The signal sampler's handler against what can interrupt it: another Python signal handler that
runs inside it (and a SIGALRM inside that one), a KeyboardInterrupt between its two appends, and a
signal while the samples are being read (a pool worker writes its samples after each task, with
the timer still armed). Handlers are called by hand, with a fake clock: no timing involved."""

from __future__ import annotations

import signal
import sys
import time
from array import array
from collections.abc import Callable
from types import FrameType

import pytest

from cnnprof.profiler.sampler import SignalSampler


def foreign_handler(signum: int, frame: FrameType | None, then: Callable[[], None]) -> None:
    """Another Python signal handler (torch's SIGCHLD one, say), inside which a SIGALRM arrives."""
    then()


def test_a_sigalrm_inside_another_handler_inside_ours_keeps_the_end_times_in_order(monkeypatch) -> None:
    clock = iter(range(1_000, 10**9, 1_000))
    nested: list[Callable[[], None]] = []

    def fake_now() -> int:
        t = next(clock)
        if nested:  # the first clock read of the outer handler: the foreign handler runs here
            call = nested.pop()
            foreign_handler(signal.SIGCHLD, sys._getframe(), call)
        return t

    monkeypatch.setattr(time, "perf_counter_ns", fake_now)
    sampler = SignalSampler(0.001)
    sampler.start_ns = 0
    handler = sampler._make_handler()
    nested.append(lambda: handler(signal.SIGALRM, sys._getframe()))
    handler(signal.SIGALRM, sys._getframe())
    handler(signal.SIGALRM, sys._getframe())
    ends = list(sampler._sample_end_ns)
    assert ends == sorted(ends)
    assert all(seconds >= 0 for _, seconds in sampler.records())


def test_an_interrupt_between_the_two_appends_leaves_ids_and_times_paired() -> None:
    sampler = SignalSampler(0.001)
    sampler.start_ns = time.perf_counter_ns()

    class EndTimes(array):
        """Raises KeyboardInterrupt on its second append: Ctrl-C right after the stack id went in."""

        def append(self, value: int) -> None:
            if len(self) == 1:
                raise KeyboardInterrupt
            super().append(value)

    sampler._sample_end_ns = EndTimes("q")
    handler = sampler._make_handler()
    handler(signal.SIGALRM, sys._getframe())
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGALRM, sys._getframe())
    assert len(sampler._sample_stack) == len(sampler._sample_end_ns) == 1


class SignalDuringReads(array):
    """An array that delivers one SIGALRM (calls `fire`) while it is read: a signal arriving
    while the samples are turned into records."""

    fire: Callable[[], None] | None = None

    def _maybe_fire(self) -> None:
        fire, self.fire = self.fire, None
        if fire is not None:
            fire()

    def __getitem__(self, index):  # noqa: ANN001, ANN204 (array's own signature)
        self._maybe_fire()
        return super().__getitem__(index)

    def __iter__(self):  # noqa: ANN204
        i = 0
        while i < super().__len__():
            yield super().__getitem__(i)
            self._maybe_fire()
            i += 1


def elsewhere(handler: Callable[[int, FrameType | None], None]) -> None:
    handler(signal.SIGALRM, sys._getframe())  # a stack the sampler has not seen yet


def test_records_while_sampling_never_meet_a_stack_they_do_not_have() -> None:
    sampler = SignalSampler(0.001)
    sampler.start_ns = time.perf_counter_ns()
    sampler._sample_stack = SignalDuringReads("l")
    handler = sampler._make_handler()
    for _ in range(3):
        handler(signal.SIGALRM, sys._getframe())
    sampler._sample_stack.fire = lambda: elsewhere(handler)
    records = sampler.records()  # before the fix: IndexError (a sample of a stack added mid-loop)
    assert sampler._sample_stack.fire is None  # the signal did arrive during the read
    assert 3 <= len(records) <= sampler.sample_count == 4
    assert all(stack and seconds >= 0 for stack, seconds in records)
    assert any("elsewhere" in frame for frame in sampler.records()[-1][0])
