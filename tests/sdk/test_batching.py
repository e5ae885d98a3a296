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


async def test_submit_many_and_errors_reach_every_caller() -> None:
    def boom(xs: list[str]) -> list[str]:
        if "bad" in xs:
            raise ValueError("bad item")
        return [x.upper() for x in xs]

    b = MicroBatcher(boom, max_batch_size=4, max_wait_s=0)
    assert await b.submit_many(["a", "b"]) == ["A", "B"]
    assert await b.submit_many([]) == []
    results = await asyncio.gather(b.submit("x"), b.submit("bad"), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert await b.submit("y") == "Y"  # the batcher survives a failed batch


def test_usable_from_successive_event_loops() -> None:
    b = MicroBatcher(lambda xs: [len(x) for x in xs])
    assert asyncio.run(b.submit("abc")) == 3
    assert asyncio.run(b.submit("ab")) == 2


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="max_batch_size"):
        MicroBatcher(lambda xs: xs, max_batch_size=0)
    with pytest.raises(ConfigError, match="max_wait_s"):
        MicroBatcher(lambda xs: xs, max_wait_s=-1)
