"""`Started`: the background pull that lets the encoder actors start while validation runs (no Ray needed)."""

from __future__ import annotations

import threading
import time

import pytest

from tamis.distributed._stream import Started


class Source:
    """An iterator that records how far it was pulled and whether it was closed."""

    def __init__(self, n: int, *, fail_at: int | None = None, gate: threading.Event | None = None) -> None:
        self.n, self.fail_at, self.gate = n, fail_at, gate
        self.pulled, self.closed = 0, False
        self.first = threading.Event()

    def __iter__(self):
        return self

    def __next__(self) -> int:
        self.first.set()
        if self.gate is not None:
            self.gate.wait(5)
        if self.pulled == self.fail_at:
            raise RuntimeError("block 3 failed")
        if self.pulled >= self.n:
            raise StopIteration
        self.pulled += 1
        return self.pulled

    def close(self) -> None:
        self.closed = True


def test_it_starts_pulling_at_once_and_yields_everything_in_order():
    src = Source(50)
    s = Started(src)
    assert src.first.wait(5)  # the work started before anyone iterates
    time.sleep(0.3)
    assert src.pulled == 1  # only the first item is pulled ahead: the driver pulls the rest itself
    assert list(s) == list(range(1, 51))
    s.close()
    assert src.closed


def test_an_error_of_the_source_is_raised_where_the_driver_iterates():
    with pytest.raises(RuntimeError, match="block 3 failed"):
        list(Started(Source(10, fail_at=0)).__iter__())  # in the first, background, pull
    s = Started(Source(10, fail_at=3))
    got = []
    with pytest.raises(RuntimeError, match="block 3 failed"):
        for x in s:
            got.append(x)
    assert got == [1, 2, 3]


def test_close_stops_a_source_nobody_consumes():
    src = Source(10**6)
    s = Started(src)
    time.sleep(0.3)
    s.close(timeout=5)
    assert src.closed and src.pulled == 1  # nothing runs through the input


def test_close_waits_for_a_pull_in_progress_then_closes_the_source():
    gate = threading.Event()
    src = Source(5, gate=gate)
    s = Started(src)
    assert src.first.wait(5)
    threading.Timer(0.3, gate.set).start()  # the block in progress finishes a little later
    s.close(timeout=5)
    assert src.closed
