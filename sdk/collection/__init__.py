"""Collections: documents -> vectors in a store, bound to their model; ingest, versions behind an alias, search with `SearchOptions`, and the query-time `Stage` protocol."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "Collection": "._collection",
        "Hit": "._stages",
        "IndexReport": "._ingest",
        "RemoteCollection": "._remote",
        "MigrationReport": "._configure",
        "SearchFn": "._stages",
        "SearchOptions": "._options",
        "SearchRequest": "._stages",
        "Stage": "._stages",
        "TransferReport": "._transfer",
        "adopt_collection": "._adopt",
        "copy_collection": "._transfer",
        "list_collections": "._versions",
        "migrate_payloads": "._configure",
        "open_collection": "._open",
        "open_store": "._open",
        "point_id": "._write",
    },
)
