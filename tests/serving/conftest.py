"""Fixtures of the serving tests: `tamis serve`'s app on 127.0.0.1 in a background thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tamis.serving import ServerThread, create_app


@pytest.fixture(scope="module")
def minilm_url(minilm) -> Iterator[str]:
    """The packaged all-MiniLM-L6-v2 (torch, CPU) served by ``create_app``."""
    with ServerThread(create_app(minilm, max_batch_size=32, max_wait_ms=5)) as url:
        yield url
