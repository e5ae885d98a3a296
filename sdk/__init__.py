"""tamis — a fine sieve for retrieval on Qdrant.

Train and distil bi-encoders, filter by calibrated relevance (the Cosine Adapter) inside Qdrant,
and serve it all through an embedded Qdrant Edge engine or a Qdrant server.

Importing tamis is cheap: names are loaded on first use, so ``import tamis`` does not import torch.

Example:
    >>> import tamis
    >>> col = tamis.open_collection("docs", create=True)            # doctest: +SKIP
    >>> col.index(tamis.load_jsonl("docs.jsonl"))                   # doctest: +SKIP
    >>> for hit in col.search("how do I reset my password?", k=5):  # doctest: +SKIP
    ...     print(hit.score, hit.text)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tamis._lazy import attach
from tamis._version import __version__

# public name -> the subpackage (or module) that exports it
_LAZY: dict[str, str] = {
    "AdapterConfig": "tamis.calibration",
    "BiEncoder": "tamis.encoders",
    "CalibrationData": "tamis.calibration",
    "CalibrationError": "tamis._errors",
    "Chunk": "tamis.data",
    "Chunker": "tamis.data",
    "Collection": "tamis.collection",
    "CollectionExistsError": "tamis._errors",
    "CollectionNotFoundError": "tamis._errors",
    "ConfigError": "tamis._errors",
    "CosineAdapter": "tamis.calibration",
    "DataError": "tamis._errors",
    "DataFormatError": "tamis._errors",
    "DimensionMismatchError": "tamis._errors",
    "Document": "tamis.data",
    "DocumentTooLargeError": "tamis._errors",
    "DuplicateIdError": "tamis._errors",
    "EmptyTextError": "tamis._errors",
    "Encoder": "tamis.encoders",
    "FakeEncoder": "tamis.encoders",
    "Hit": "tamis.collection",
    "IndexReport": "tamis.collection",
    "ModelError": "tamis._errors",
    "ModelMismatchError": "tamis._errors",
    "RemoteInferenceError": "tamis._errors",
    "RerankerConfig": "tamis.training",
    "SearchOptions": "tamis.collection",
    "SearchRequest": "tamis.collection",
    "Stage": "tamis.collection",
    "StoreError": "tamis._errors",
    "TamisError": "tamis._errors",
    "TrainConfig": "tamis.training",
    "TrainResult": "tamis.training",
    "default_model_path": "tamis.encoders",
    "evaluate_model": "tamis.evaluation",
    "index_distributed": "tamis.distributed",
    "load_beir": "tamis.data",
    "load_directory": "tamis.data",
    "load_encoder": "tamis.encoders",
    "load_jsonl": "tamis.data",
    "open_collection": "tamis.collection",
    "train_bi_encoder": "tamis.training",
    "train_reranker": "tamis.training",
}

__getattr__, __dir__, __all__ = attach(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from tamis._errors import (
        CalibrationError,
        CollectionExistsError,
        CollectionNotFoundError,
        ConfigError,
        DataError,
        DataFormatError,
        DimensionMismatchError,
        DocumentTooLargeError,
        DuplicateIdError,
        EmptyTextError,
        ModelError,
        ModelMismatchError,
        RemoteInferenceError,
        StoreError,
        TamisError,
    )
    from tamis.calibration import AdapterConfig, CalibrationData, CosineAdapter
    from tamis.collection import (
        Collection,
        Hit,
        IndexReport,
        SearchOptions,
        SearchRequest,
        Stage,
        open_collection,
    )
    from tamis.data import Chunk, Chunker, Document, load_beir, load_directory, load_jsonl
    from tamis.distributed import index_distributed
    from tamis.encoders import BiEncoder, Encoder, FakeEncoder, default_model_path, load_encoder
    from tamis.evaluation import evaluate_model
    from tamis.training import RerankerConfig, TrainConfig, TrainResult, train_bi_encoder, train_reranker
