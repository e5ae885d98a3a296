"""`VectorStoreTests`: the `tamis.stores.VectorStore` contract as a pytest class to subclass."""

from __future__ import annotations

from tamis.testing._collections import CollectionTests
from tamis.testing._hybrid import HybridTests
from tamis.testing._points import PointTests
from tamis.testing._search import SearchTests

__all__ = ["VectorStoreTests"]


class VectorStoreTests(CollectionTests, PointTests, SearchTests, HybridTests):
    """The contract every `tamis.stores.VectorStore` passes, in the style of ``langchain-tests``.

    Subclass it in a test module (name the subclass ``Test...`` so pytest collects it) and
    override the ``store_factory`` fixture, keeping ``scope="class"``: it returns a callable that
    builds the store under test on a folder. Each call must return a new store object; one built
    on a folder used before must see the data written there, unless the class sets
    ``persistent = False`` (an in-memory store). Override ``native_filter`` too if the store
    accepts a native filter object: it returns ``(key, value) -> filter on payload[key] == value``.

    The suite covers collections (create / exists / list / delete, dimension, metadata, names),
    aliases, points (upsert / retrieve / scroll / count / delete_points, ids, payloads,
    dimensions), mapping and native filters, search and search_batch (exactness, recall with the
    default HNSW settings, thresholds, offsets, other distances, argument errors), flush /
    optimize, persistence, closing, concurrent use from two threads, the `tamis._errors`
    type of every failure, and hybrid collections (dense + BM25 sparse vectors, sparse / RRF / DBSF /
    formula queries, checked against client-side BM25, RRF and relevance; a store without them sets
    ``supports_hybrid = False``).

    Example:
        >>> import pytest
        >>> from tamis.testing import VectorStoreTests
        >>> class TestMyStore(VectorStoreTests):
        ...     @pytest.fixture(scope="class")
        ...     def store_factory(self):
        ...         return lambda folder: MyStore(folder)
    """
