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

from tamis._version import __version__

# public name -> private module that defines it
_LAZY: dict[str, str] = {
    "AdapterConfig": "tamis.calibration._adapter",
    "BiEncoder": "tamis.encoders._encoder",
    "CalibrationData": "tamis.calibration._adapter",
    "CalibrationError": "tamis._errors",
    "Chunk": "tamis.data._documents",
    "Chunker": "tamis.data._documents",
    "Collection": "tamis.collection._collection",
    "CollectionExistsError": "tamis._errors",
    "CollectionNotFoundError": "tamis._errors",
    "ConfigError": "tamis._errors",
    "CosineAdapter": "tamis.calibration._adapter",
    "DataError": "tamis._errors",
    "DataFormatError": "tamis._errors",
    "DimensionMismatchError": "tamis._errors",
    "Document": "tamis.data._documents",
    "DocumentTooLargeError": "tamis._errors",
    "DuplicateIdError": "tamis._errors",
    "EmptyTextError": "tamis._errors",
    "Encoder": "tamis.encoders._encoder",
    "FakeEncoder": "tamis.encoders._encoder",
    "Hit": "tamis.collection._collection",
    "IndexReport": "tamis.collection._collection",
    "ModelError": "tamis._errors",
    "ModelMismatchError": "tamis._errors",
    "RemoteInferenceError": "tamis._errors",
    "RerankerConfig": "tamis.training._config",
    "SearchRequest": "tamis.collection._stages",
    "Stage": "tamis.collection._stages",
    "StoreError": "tamis._errors",
    "TamisError": "tamis._errors",
    "TrainConfig": "tamis.training._config",
    "TrainResult": "tamis.training._train",
    "default_model_path": "tamis.encoders._encoder",
    "evaluate_model": "tamis.evaluation._retrieval",
    "load_beir": "tamis.data._documents",
    "load_directory": "tamis.data._documents",
    "load_encoder": "tamis.encoders._encoder",
    "load_jsonl": "tamis.data._documents",
    "open_collection": "tamis.collection._collection",
    "train_bi_encoder": "tamis.training._train",
    "train_reranker": "tamis.training._train",
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
    from tamis.collection import Collection, Hit, IndexReport, SearchRequest, Stage, open_collection
    from tamis.data import Chunk, Chunker, Document, load_beir, load_directory, load_jsonl
    from tamis.encoders import BiEncoder, Encoder, FakeEncoder, default_model_path, load_encoder
    from tamis.evaluation import evaluate_model
    from tamis.training import RerankerConfig, TrainConfig, TrainResult, train_bi_encoder, train_reranker
