"""Sparse vectors and the BM25 encoder of hybrid collections, the same for every store.

A hybrid collection stores, per point, the dense vector (Qdrant's default, unnamed vector, as
langchain-qdrant does) and a sparse vector named `SPARSE_NAME`: the chunk's BM25 term weights.
The collection is created with the IDF modifier, so the engine applies the inverse document
frequency itself (Qdrant Edge and qdrant-client compute it from the points stored, and keep it up
to date on upsert and delete); the sparse query vector gives each query token the weight 1.

The term weights come from Qdrant Edge's built-in `Bm25` (``qdrant_edge.Bm25``, a pure function
of the text: the same tokenizer, stemmer, stop words and ``k``/``b``/``avg_len`` for both stores,
and the config has the JSON shape of the Qdrant server's own ``Bm25Config``). It is a core
dependency already, imported here at first use only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tamis._errors import ConfigError, DataError

__all__ = ["BM25_DEFAULTS", "SPARSE_NAME", "Bm25Encoder", "SparseVector", "check_sparse"]

#: the name of the BM25 sparse vector in a hybrid collection
SPARSE_NAME = "bm25"
#: the BM25 settings of a new hybrid collection (stored in its manifest)
BM25_DEFAULTS: dict[str, Any] = {"k": 1.2, "b": 0.75, "avg_len": 256.0, "language": "english"}


@dataclass(frozen=True, slots=True)
class SparseVector:
    """A sparse vector: distinct non-negative integer ``indices`` and their finite ``values``."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, vector: Any) -> SparseVector:
        """A `SparseVector` from anything with ``indices`` and ``values`` (an engine's sparse vector)."""
        if isinstance(vector, SparseVector):
            return vector
        return cls(tuple(int(i) for i in vector.indices), tuple(float(v) for v in vector.values))

    def __len__(self) -> int:
        return len(self.indices)


def check_sparse(vector: Any, what: str = "sparse vector") -> SparseVector:
    """``vector`` as a checked `SparseVector`; `DataError` naming the problem otherwise."""
    if not hasattr(vector, "indices") or not hasattr(vector, "values"):
        raise ConfigError(f"{what} must have indices and values (a tamis.stores.SparseVector), got {vector!r}")
    try:
        sv = SparseVector.of(vector)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} has non-numeric indices or values: {exc}") from exc
    if len(sv.indices) != len(sv.values):
        raise DataError(f"{what} has {len(sv.indices)} indices and {len(sv.values)} values; give one value per index")
    if len(set(sv.indices)) != len(sv.indices) or any(i < 0 or i >= 2**32 for i in sv.indices):
        raise DataError(f"{what} indices must be distinct integers in [0, 2**32), got {sv.indices[:8]}...")
    if not all(math.isfinite(v) for v in sv.values):
        raise DataError(f"{what} contains NaN or infinity")
    return sv


class Bm25Encoder:
    """BM25 term weights of documents and queries (Qdrant Edge's ``Bm25``), for hybrid collections.

    Args:
        settings: ``k``, ``b``, ``avg_len`` and ``language`` (default `BM25_DEFAULTS`); a collection
            stores them in its manifest, so its queries are tokenized as its documents were.

    Example:
        >>> bm25 = Bm25Encoder()
        >>> q = bm25.embed_query("Error E1234 in os.path.join")
        >>> len(q) > 0 and set(q.values) == {1.0}
        True
    """

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        import qdrant_edge

        unknown = set(settings or {}) - set(BM25_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown BM25 settings {sorted(unknown)}; use {sorted(BM25_DEFAULTS)}")
        self.settings = {**BM25_DEFAULTS, **(settings or {})}
        try:
            self._model = qdrant_edge.Bm25(qdrant_edge.Bm25Config(**self.settings))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"invalid BM25 settings {self.settings}: {exc}") from exc

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """The BM25 term-frequency weights of each text (IDF is the engine's)."""
        return [SparseVector.of(self._model.embed_document(t)) for t in texts]

    def embed_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """Each text's distinct tokens with weight 1 (a query's BM25 vector)."""
        return [SparseVector.of(self._model.embed_query(t)) for t in texts]

    def embed_query(self, text: str) -> SparseVector:
        """`embed_queries` of one text."""
        return self.embed_queries([text])[0]
