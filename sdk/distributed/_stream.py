"""`Started`: a Ray Data batch iterator set going in a background thread, consumed later by the driver.

The encoder actors of a new collection start (process, imports, model: seconds each) while the
driver still runs the validation pass. Ray Data starts an execution on the iterator's first ``next``,
so a thread makes that one call now and keeps the first batch; the driver then iterates the same
iterator itself. One batch more than Ray Data's own buffer is held, and only until the driver
starts (its backpressure bounds the rest); `close` ends the iterator (and with it the execution)
when validation fails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["Started"]


class Started:
    """Iterate ``batches`` (an iterable whose first ``next`` starts the work), that first ``next`` made now.

    Example:
        >>> s = Started(iter([1, 2, 3]))
        >>> list(s)
        [1, 2, 3]
    """

    def __init__(self, batches: Iterable[Any]) -> None:
        self._it: Iterator[Any] = iter(batches)
        self._first: list[Any] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._prime, name="tamis-encode-start", daemon=True)
        self._thread.start()

    def _prime(self) -> None:
        try:
            self._first.append(next(self._it))
        except StopIteration:
            pass
        except BaseException as exc:  # raised where the driver iterates
            self._error = exc

    def __iter__(self) -> Iterator[Any]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._first:
            yield self._first.pop()
            yield from self._it

    def close(self, timeout: float = 30.0) -> None:
        """End the iterator, once the first ``next`` (waited for up to ``timeout`` s) has returned."""
        self._thread.join(timeout)
        close = getattr(self._it, "close", None)
        if close is not None and not self._thread.is_alive():
            close()
