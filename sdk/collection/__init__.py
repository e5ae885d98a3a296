"""Collections: documents -> vectors in a store, bound to their model; ingest, versions behind an alias, search, and the query-time `Stage` protocol."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "Collection": "._collection",
        "Hit": "._collection",
        "IndexReport": "._collection",
        "SearchFn": "._stages",
        "SearchRequest": "._stages",
        "Stage": "._stages",
        "open_collection": "._collection",
        "point_id": "._collection",
    },
)
