"""`Started`: a Ray Data batch iterator set going in a background thread, consumed later by the driver.

The encoder actors of a new collection start (process, imports, model: seconds each) while the
driver still runs the validation pass. The thread owns the iterator: it pulls one batch at a time
into a queue of one, so Ray Data's backpressure holds as when the driver pulls itself, and
`close` stops it (the thread closes the iterator, which ends the execution) when validation fails.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["Started"]

_END = object()


class Started:
    """Iterate ``batches`` (an iterable whose first ``next`` starts the work) from a thread started now.

    Example:
        >>> s = Started(iter([1, 2, 3]))
        >>> list(s)
        [1, 2, 3]
    """

    def __init__(self, batches: Iterable[Any]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pull, args=(iter(batches),), name="tamis-encode-stream", daemon=True)
        self._thread.start()

    def _pull(self, it: Iterator[Any]) -> None:
        try:
            for item in it:
                if not self._put(item):
                    break
        except BaseException as exc:  # handed to the consumer, raised where it iterates
            self._put(exc)
            return
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        self._put(_END)

    def _put(self, item: object) -> bool:
        """Queue ``item`` once the consumer has taken the one before; False when `close` came first."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self, timeout: float = 30.0) -> None:
        """Stop pulling and end the iterator (waits up to ``timeout`` s for a batch in progress)."""
        self._stop.set()
        self._thread.join(timeout)
