"""Dynamic batching for asyncio callers of a blocking, batch-friendly function.

Many concurrent coroutines each ask for one item (a query vector, a search); `MicroBatcher`
collects what arrives within a short window (or until a batch is full), runs the blocking
function *once* for the whole batch in a worker thread, and hands each caller its own result.
While one batch runs, the next one fills up, so throughput grows with concurrency instead of
collapsing into a queue of single-item calls. `tamis serve` batches concurrent HTTP requests with
it; `tamis.adapters.langchain.TamisRetriever` batches concurrent ``ainvoke`` calls.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tamis._errors import ConfigError, TamisError

__all__ = ["MicroBatcher", "QueueFullError"]


class QueueFullError(TamisError):
    """A `MicroBatcher` whose queue holds ``max_queue`` items already (``tamis serve`` answers 429)."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _LoopState:
    pending: list[tuple[Any, asyncio.Future[Any]]] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None


class MicroBatcher(Generic[T, R]):
    """Coalesce concurrent ``await submit(item)`` calls into calls of ``fn(items) -> results``.

    Args:
        fn: a blocking function mapping a list of items to a list of results of the same length,
            in order. It runs in a worker thread (``asyncio.to_thread``), one batch at a time.
        max_batch_size: most items per call of ``fn``.
        max_wait_s: how long the first item to reach an idle batcher waits for company before its
            batch runs anyway (batches that fill up run at once). While a batch runs, the next one
            fills up with what arrives meanwhile and runs as soon as the model is free, without
            waiting again.
        max_queue: most items waiting at once; a submission that would go over raises
            `QueueFullError` at once (None: no bound).

    Isolation: when ``fn`` fails on a batch of several items, each item is retried alone, so only
    the callers whose own item fails get the exception, not everyone who shared the batch.

    Usable from several event loops (each gets its own queue); not from a thread without a loop.

    Example:
        >>> import asyncio
        >>> b = MicroBatcher(lambda xs: [x * 2 for x in xs], max_batch_size=8)
        >>> async def main():
        ...     return await asyncio.gather(*(b.submit(i) for i in range(3)))
        >>> asyncio.run(main())
        [0, 2, 4]
    """

    def __init__(
        self, fn: Callable[[list[T]], Sequence[R]], *, max_batch_size: int = 64, max_wait_s: float = 0.002,
        max_queue: int | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be positive, got {max_batch_size}")
        if max_wait_s < 0:
            raise ConfigError(f"max_wait_s must be >= 0, got {max_wait_s}")
        if max_queue is not None and max_queue < 1:
            raise ConfigError(f"max_queue must be positive (or None), got {max_queue}")
        self.fn = fn
        self.max_queue = max_queue
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        #: sizes of the batches run so far (for tests and benchmarks)
        self.batch_sizes: list[int] = []
        #: called with the size of each batch before it runs (metrics)
        self.on_batch: Callable[[int], None] | None = None

    def queue_depth(self) -> int:
        """Items waiting (not yet handed to ``fn``), over every event loop."""
        return sum(len(s.pending) for s in list(self._states.values()))

    async def submit(self, item: T) -> R:
        """The result of ``fn`` for ``item``, computed in a batch with concurrent submissions."""
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Results for several items (they may be split over batches, shared with other callers)."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        if self.max_queue is not None and len(state.pending) + len(items) > self.max_queue:
            raise QueueFullError(
                f"the queue is full ({len(state.pending)} items waiting, limit {self.max_queue}); retry later"
            )
        futures = []
        for item in items:
            fut: asyncio.Future[R] = loop.create_future()
            state.pending.append((item, fut))
            futures.append(fut)
        if len(state.pending) >= self.max_batch_size:
            state.wakeup.set()
        if state.worker is None or state.worker.done():
            state.worker = loop.create_task(self._work(state), name="tamis-microbatcher")
        return list(await asyncio.gather(*futures))

    async def _work(self, state: _LoopState) -> None:
        idle = True  # only the first batch after a quiet spell waits for company
        while state.pending:
            if idle and len(state.pending) < self.max_batch_size and self.max_wait_s > 0:
                state.wakeup.clear()
                try:
                    await asyncio.wait_for(state.wakeup.wait(), self.max_wait_s)
                except asyncio.TimeoutError:
                    pass
            idle = False  # the next batch is what arrived while this one ran: it runs at once
            batch = [(x, f) for x, f in state.pending[: self.max_batch_size] if not f.done()]
            del state.pending[: self.max_batch_size]
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            if self.on_batch is not None:
                self.on_batch(len(batch))
            try:
                results = await self._run(batch)
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit) as exc:
                for _, f in batch:
                    if not f.done():
                        f.set_exception(exc)
                raise
            for (_, f), r in zip(batch, results, strict=True):
                if not f.done():
                    if isinstance(r, _Failed):
                        f.set_exception(r.exc)
                    else:
                        f.set_result(r)

    async def _run(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> list[Any]:
        """Results of ``fn`` for the batch; when it fails, each item alone (a `_Failed` for those that fail)."""
        items = [x for x, _ in batch]
        try:
            return _checked(await asyncio.to_thread(self.fn, items), len(items))
        except Exception as exc:
            if len(items) == 1:
                return [_Failed(exc)]
        out: list[Any] = []
        for x in items:  # one bad item must not fail the others who shared its batch
            try:
                out.append(_checked(await asyncio.to_thread(self.fn, [x]), 1)[0])
            except Exception as exc:
                out.append(_Failed(exc))
        return out


@dataclass
class _Failed:
    exc: BaseException


def _checked(results: Sequence[Any], n: int) -> Sequence[Any]:
    if len(results) != n:
        raise RuntimeError(f"batched function returned {len(results)} results for {n} items")
    return results
