"""Test suites for code that plugs into tamis: `VectorStoreTests`, the `tamis.stores.VectorStore` contract.

Not imported by ``import tamis``; importing a suite imports pytest (a test dependency only).

Example:
    >>> from tamis.testing import VectorStoreTests        # doctest: +SKIP
    >>> class TestMyStore(VectorStoreTests):               # doctest: +SKIP
    ...     @pytest.fixture(scope="class")
    ...     def store_factory(self):
    ...         return lambda folder: MyStore(folder)
"""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"VectorStoreTests": "._vector_store"})
