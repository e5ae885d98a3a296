import importlib
import subprocess
import sys

import pytest

import tamis

# The public surface, pinned: adding or removing a public name is done here, on purpose.
EXPECTED: dict[str, list[str]] = {
    "tamis": [
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
        "SearchOptions",
        "SearchRequest",
        "Stage",
        "StoreError",
        "TamisError",
        "TrainConfig",
        "TrainResult",
        "default_model_path",
        "evaluate_model",
        "index_distributed",
        "load_beir",
        "load_directory",
        "load_encoder",
        "load_jsonl",
        "open_collection",
        "train_bi_encoder",
        "train_reranker",
    ],
    "tamis.data": [
        "Chunk",
        "Chunker",
        "Document",
        "DocumentSource",
        "OnInvalid",
        "TrainingData",
        "load_beir",
        "load_beir_queries",
        "load_data",
        "load_directory",
        "load_jsonl",
        "load_qrels",
        "load_training_data",
    ],
    "tamis.encoders": [
        "BiEncoder",
        "DEFAULT_MODEL",
        "Encoder",
        "FakeEncoder",
        "OnnxEncoder",
        "QualityGateError",
        "TextKind",
        "TokenEncoder",
        "default_model_path",
        "fingerprint_sentence_transformer",
        "load_encoder",
        "model_source",
        "resolve_device",
        "resolve_model",
    ],
    "tamis.stores": [
        "BM25_DEFAULTS",
        "BaseStore",
        "Bm25Encoder",
        "CollectionSettings",
        "DEFAULT_HNSW_EF",
        "DEFAULT_HNSW_EF_CONSTRUCT",
        "DEFAULT_HNSW_M",
        "DISTANCES",
        "FUSIONS",
        "FusedPoint",
        "HybridMethods",
        "HybridQuery",
        "MODES",
        "MemoryTiers",
        "PAYLOAD_FORMAT",
        "PayloadIndex",
        "PointContent",
        "Quantization",
        "Record",
        "RelevanceFormula",
        "SERVER_ONLY",
        "SPARSE_NAME",
        "ScoredPoint",
        "SearchParams",
        "SparseVector",
        "StorePoint",
        "VectorStore",
        "batch_thresholds",
        "canonical_id",
        "check_batch_size",
        "check_dim",
        "check_distance",
        "check_hnsw",
        "check_name",
        "check_search_args",
        "check_sparse",
        "join_components",
        "json_copy",
        "mapping_conditions",
        "point_payload",
        "read_payload",
        "resolve_params",
        "single_vector",
        "to_record",
        "to_scored",
        "validate_filter",
        "vector_matrix",
    ],
    "tamis.collection": [
        "Collection",
        "Hit",
        "IndexReport",
        "MigrationReport",
        "RemoteCollection",
        "SearchFn",
        "SearchOptions",
        "SearchRequest",
        "Stage",
        "TransferReport",
        "adopt_collection",
        "copy_collection",
        "list_collections",
        "migrate_payloads",
        "open_collection",
        "open_store",
        "point_id",
    ],
    "tamis.calibration": [
        "AdapterConfig",
        "CalibrationData",
        "CosineAdapter",
        "CrossEncoderScorer",
        "HybridAdapter",
        "HybridCalibrationData",
        "HybridConfig",
        "METHODS",
        "ThresholdReport",
        "TrainingReport",
        "calibrate",
        "calibrate_hybrid",
        "calibrate_rerank",
        "choose_threshold",
        "fit_baselines",
        "method_scores",
        "metrics_at",
        "platt",
        "reranker_fingerprint",
        "score_features",
    ],
    "tamis.evaluation": [
        "average_precision",
        "evaluate_collection",
        "evaluate_filtering",
        "evaluate_hybrid",
        "evaluate_model",
        "exact_search",
        "exact_top_k",
        "ir_metrics",
        "plot_pr_curves",
        "pr_curve",
        "precision_at_recall",
        "sample_split",
    ],
    "tamis.training": [
        "BiEncoderTeacher",
        "CrossEncoderTeacher",
        "Direction",
        "EnsembleTeacher",
        "RerankTeacher",
        "RerankerConfig",
        "Teacher",
        "TeacherScorer",
        "TrainConfig",
        "TrainResult",
        "config_from",
        "load_teacher",
        "train_bi_encoder",
        "train_reranker",
    ],
    "tamis.serving": [
        "MicroBatcher",
        "QueueFullError",
        "ServerThread",
        "create_app",
        "run",
        "server_config",
    ],
    "tamis.distributed": [
        "RayConfig",
        "RayPairScorer",
        "RayWorkers",
        "index_distributed",
    ],
    "tamis.testing": [
        "VectorStoreTests",
    ],
    "tamis.cli": [
        "app",
        "main",
    ],
}


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_all_is_exactly_the_pinned_list(package):
    mod = importlib.import_module(package)
    assert mod.__all__ == EXPECTED[package], "a public name was added or removed: update EXPECTED on purpose"
    for name in mod.__all__:
        assert getattr(mod, name) is not None
    assert set(EXPECTED[package]) <= set(dir(mod))


def test_import_is_cheap():
    """``import tamis`` and every subpackage import nothing heavy until a name that needs it is used."""
    packages = ", ".join(sorted(p for p in EXPECTED if p != "tamis.testing"))
    code = (
        f"import sys, {packages}; tamis.Document; tamis.SearchOptions; "
        "print('torch' in sys.modules, 'qdrant_edge' in sys.modules, 'ray' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "False", "False"]


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tamis.nope  # noqa: B018


def test_error_tree():
    assert issubclass(tamis.ModelMismatchError, tamis.ModelError)
    assert issubclass(tamis.DuplicateIdError, tamis.DataError)
    assert issubclass(tamis.DataError, ValueError)
    for name in [n for n in tamis.__all__ if n.endswith("Error")]:
        assert issubclass(getattr(tamis, name), tamis.TamisError)
