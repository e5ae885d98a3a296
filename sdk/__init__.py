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

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> private module that defines it
_LAZY: dict[str, str] = {
    "AdapterConfig": "tamis._calibration",
    "BiEncoder": "tamis._encoder",
    "CalibrationData": "tamis._calibration",
    "CalibrationError": "tamis._errors",
    "Chunk": "tamis._documents",
    "Chunker": "tamis._documents",
    "Collection": "tamis._collection",
    "CollectionExistsError": "tamis._errors",
    "CollectionNotFoundError": "tamis._errors",
    "ConfigError": "tamis._errors",
    "CosineAdapter": "tamis._calibration",
    "DataError": "tamis._errors",
    "DataFormatError": "tamis._errors",
    "DimensionMismatchError": "tamis._errors",
    "Document": "tamis._documents",
    "DocumentTooLargeError": "tamis._errors",
    "DuplicateIdError": "tamis._errors",
    "EmptyTextError": "tamis._errors",
    "Encoder": "tamis._encoder",
    "FakeEncoder": "tamis._encoder",
    "Hit": "tamis._collection",
    "IndexReport": "tamis._collection",
    "ModelError": "tamis._errors",
    "ModelMismatchError": "tamis._errors",
    "RemoteInferenceError": "tamis._errors",
    "RerankerConfig": "tamis._train_config",
    "SearchRequest": "tamis._stages",
    "Stage": "tamis._stages",
    "StoreError": "tamis._errors",
    "TamisError": "tamis._errors",
    "TrainConfig": "tamis._train_config",
    "TrainResult": "tamis._train",
    "default_model_path": "tamis._encoder",
    "evaluate_model": "tamis._evaluate",
    "load_beir": "tamis._documents",
    "load_directory": "tamis._documents",
    "load_encoder": "tamis._encoder",
    "load_jsonl": "tamis._documents",
    "open_collection": "tamis._collection",
    "train_bi_encoder": "tamis._train",
    "train_reranker": "tamis._train",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tamis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from tamis._calibration import AdapterConfig, CalibrationData, CosineAdapter
    from tamis._collection import Collection, Hit, IndexReport, open_collection
    from tamis._documents import Chunk, Chunker, Document, load_beir, load_directory, load_jsonl
    from tamis._encoder import BiEncoder, Encoder, FakeEncoder, default_model_path, load_encoder
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
    from tamis._evaluate import evaluate_model
    from tamis._stages import SearchRequest, Stage
    from tamis._train import TrainResult, train_bi_encoder, train_reranker
    from tamis._train_config import RerankerConfig, TrainConfig
