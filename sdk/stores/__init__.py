"""The vector-store contract that the Qdrant Edge and qdrant-client adapters implement.

`VectorStore` is the protocol and its data classes; `BaseStore` implements its public methods
(arguments checked once) over a few backend hooks, with the store-neutral helpers below; the
contract suite a store must pass is `tamis.testing.VectorStoreTests`.
"""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "BM25_DEFAULTS": "._sparse",
        "BaseStore": "._base",
        "Bm25Encoder": "._sparse",
        "FUSIONS": "._hybrid",
        "FusedPoint": "._hybrid",
        "HybridMethods": "._hybrid",
        "HybridQuery": "._hybrid",
        "MODES": "._hybrid",
        "RelevanceFormula": "._hybrid",
        "SPARSE_NAME": "._sparse",
        "SparseVector": "._sparse",
        "CollectionSettings": "._settings",
        "MemoryTiers": "._settings",
        "PayloadIndex": "._settings",
        "Quantization": "._settings",
        "SERVER_ONLY": "._settings",
        "DEFAULT_HNSW_EF": "._helpers",
        "DEFAULT_HNSW_EF_CONSTRUCT": "._helpers",
        "DEFAULT_HNSW_M": "._helpers",
        "DISTANCES": "._helpers",
        "PAYLOAD_FORMAT": "._helpers",
        "PointContent": "._helpers",
        "Record": "._protocol",
        "ScoredPoint": "._protocol",
        "SearchParams": "._protocol",
        "StorePoint": "._protocol",
        "VectorStore": "._protocol",
        "batch_thresholds": "._helpers",
        "canonical_id": "._helpers",
        "check_batch_size": "._helpers",
        "check_dim": "._helpers",
        "check_distance": "._helpers",
        "check_hnsw": "._helpers",
        "check_name": "._helpers",
        "check_search_args": "._helpers",
        "check_sparse": "._sparse",
        "join_components": "._hybrid",
        "json_copy": "._helpers",
        "mapping_conditions": "._helpers",
        "point_payload": "._helpers",
        "read_payload": "._helpers",
        "resolve_params": "._helpers",
        "single_vector": "._helpers",
        "to_record": "._helpers",
        "to_scored": "._helpers",
        "validate_filter": "._protocol",
        "vector_matrix": "._helpers",
    },
)
