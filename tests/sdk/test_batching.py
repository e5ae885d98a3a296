"""MicroBatcher: concurrent submissions share calls of the batched function."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tamis._errors import ConfigError
from tamis.serving import MicroBatcher


async def test_concurrent_items_share_batches_and_keep_order() -> None:
    threads: set[int] = set()

    def double(xs: list[int]) -> list[int]:
        threads.add(threading.get_ident())
        return [x * 2 for x in xs]

    b = MicroBatcher(double, max_batch_size=8, max_wait_s=0.01)
    out = await asyncio.gather(*(b.submit(i) for i in range(20)))
    assert out == [i * 2 for i in range(20)]
    assert max(b.batch_sizes) == 8 and sum(b.batch_sizes) == 20
    assert threading.get_ident() not in threads  # the function ran off the event loop


async def test_a_failing_item_fails_only_its_own_caller() -> None:
    calls: list[list[str]] = []

    def boom(xs: list[str]) -> list[str]:
        calls.append(list(xs))
        if "bad" in xs:
            raise ValueError("bad item")
        return [x.upper() for x in xs]

    b = MicroBatcher(boom, max_batch_size=4, max_wait_s=0.01)
    assert await b.submit_many(["a", "b"]) == ["A", "B"]
    assert await b.submit_many([]) == []
    calls.clear()
    results = await asyncio.gather(b.submit("x"), b.submit("bad"), b.submit("z"), return_exceptions=True)
    assert results[0] == "X" and isinstance(results[1], ValueError) and results[2] == "Z"
    assert calls == [["x", "bad", "z"], ["x"], ["bad"], ["z"]]  # one shared call, then each alone
    with pytest.raises(ValueError):
        await b.submit_many(["y", "bad"])  # a caller whose own item fails gets the error
    assert await b.submit("y") == "Y"  # the batcher survives a failed batch


async def test_queue_limit_refuses_at_once() -> None:
    from tamis.serving import QueueFullError

    gate = threading.Event()
    b = MicroBatcher(lambda xs: (gate.wait(5), xs)[1], max_batch_size=2, max_wait_s=0, max_queue=3)
    first = asyncio.ensure_future(b.submit_many(["a", "b"]))  # runs, holding the worker
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(b.submit_many(["c", "d", "e"]))  # fills the queue
    await asyncio.sleep(0.01)
    assert b.queue_depth() == 3
    with pytest.raises(QueueFullError, match="limit 3"):
        await b.submit("f")
    gate.set()
    assert await first == ["a", "b"] and await waiting == ["c", "d", "e"]


async def test_only_a_batch_that_finds_the_batcher_idle_waits_for_company() -> None:
    import time

    def slow(xs: list[int]) -> list[int]:
        time.sleep(0.2)
        return xs

    b = MicroBatcher(slow, max_batch_size=8, max_wait_s=0.4)
    t0 = time.perf_counter()
    first = asyncio.ensure_future(b.submit(1))  # idle: waits 0.4 s for company, then runs 0.2 s
    await asyncio.sleep(0.5)  # the first batch is running now
    t1 = time.perf_counter()
    assert await b.submit(2) == 2  # arrived while it ran: runs as soon as the model is free, no new wait
    assert await first == 1
    assert time.perf_counter() - t0 >= 0.6 and time.perf_counter() - t1 < 0.55
    assert b.batch_sizes == [1, 1]


def test_usable_from_successive_event_loops() -> None:
    b = MicroBatcher(lambda xs: [len(x) for x in xs])
    assert asyncio.run(b.submit("abc")) == 3
    assert asyncio.run(b.submit("ab")) == 2


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="max_batch_size"):
        MicroBatcher(lambda xs: xs, max_batch_size=0)
    with pytest.raises(ConfigError, match="max_wait_s"):
        MicroBatcher(lambda xs: xs, max_wait_s=-1)
