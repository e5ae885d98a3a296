import subprocess
import sys

import tamis

EXPECTED = [
    "AdapterConfig",
    "BiEncoder",
    "CalibrationData",
    "CalibrationError",
    "Chunk",
    "Chunker",
    "Collection",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "ConfigError",
    "CosineAdapter",
    "DataError",
    "DataFormatError",
    "DimensionMismatchError",
    "Document",
    "DocumentTooLargeError",
    "DuplicateIdError",
    "EmptyTextError",
    "Encoder",
    "FakeEncoder",
    "Hit",
    "IndexReport",
    "ModelError",
    "ModelMismatchError",
    "RemoteInferenceError",
    "RerankerConfig",
    "SearchRequest",
    "Stage",
    "StoreError",
    "TamisError",
    "TrainConfig",
    "TrainResult",
    "default_model_path",
    "evaluate_model",
    "load_beir",
    "load_directory",
    "load_encoder",
    "load_jsonl",
    "open_collection",
    "train_bi_encoder",
    "train_reranker",
]


def test_all_is_pinned_and_sorted():
    assert tamis.__all__ == sorted(tamis.__all__)
    assert set(EXPECTED) <= set(tamis.__all__)
    for name in tamis.__all__:
        assert getattr(tamis, name) is not None


def test_import_is_cheap():
    code = "import sys, tamis; tamis.Document; print('torch' in sys.modules, 'qdrant_edge' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "False"]


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tamis.nope  # noqa: B018


def test_error_tree():
    assert issubclass(tamis.ModelMismatchError, tamis.ModelError)
    assert issubclass(tamis.DuplicateIdError, tamis.DataError)
    assert issubclass(tamis.DataError, ValueError)
    for name in [n for n in tamis.__all__ if n.endswith("Error")]:
        assert issubclass(getattr(tamis, name), tamis.TamisError)
