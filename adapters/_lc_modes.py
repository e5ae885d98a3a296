"""`RetrievalMode`: the search modes of `tamis.adapters.langchain.TamisRetriever`, named as langchain-qdrant's.

``RetrievalMode.DENSE`` (cosine), ``SPARSE`` (BM25) and ``HYBRID`` (both fused in the engine; the
calibrated formula on a calibrated hybrid collection) are the strings ``"dense"``, ``"sparse"`` and
``"hybrid"`` of `tamis.collection.SearchOptions.mode`, so either spelling works.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from tamis._errors import ConfigError

__all__ = ["RetrievalMode", "mode_value"]


class RetrievalMode(str, Enum):
    """How a retriever searches (the names and values of ``langchain_qdrant.RetrievalMode``)."""

    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"


def mode_value(mode: Any) -> str | None:
    """``mode`` (a `RetrievalMode`, its string, or None: the collection's default) as the search option."""
    if mode is None:
        return None
    try:
        return RetrievalMode(mode.value if isinstance(mode, Enum) else mode).value
    except ValueError:
        raise ConfigError(f"unknown retrieval mode {mode!r}; use one of {[m.value for m in RetrievalMode]}") from None
