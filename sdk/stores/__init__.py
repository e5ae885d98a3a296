"""The vector-store contract that the Qdrant Edge and qdrant-client adapters implement."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "Record": "._protocol",
        "ScoredPoint": "._protocol",
        "SearchParams": "._protocol",
        "StorePoint": "._protocol",
        "VectorStore": "._protocol",
        "validate_filter": "._protocol",
    },
)
