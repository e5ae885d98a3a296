"""The Cosine Adapter: a query-dependent map from cosine scores to a calibrated probability of relevance, and its threshold.

``calibrate(collection, queries, qrels)`` does it all (candidates, training, threshold, baselines) and
stores the adapter with the collection; `CalibrationData`, `CosineAdapter.fit` and `choose_threshold`
are the steps, for custom pipelines and benchmarks.
"""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "AdapterConfig": "._config",
        "METHODS": "._baselines",
        "CalibrationData": "._data",
        "CosineAdapter": "._adapter",
        "CrossEncoderScorer": "._rerank",
        "HybridAdapter": "._hybrid",
        "HybridCalibrationData": "._hybrid_data",
        "HybridConfig": "._hybrid_config",
        "ThresholdReport": "._threshold",
        "TrainingReport": "._train",
        "calibrate": "._fit",
        "calibrate_hybrid": "._hybrid_fit",
        "calibrate_rerank": "._rerank",
        "fit_baselines": "._baselines",
        "method_scores": "._baselines",
        "metrics_at": "._threshold",
        "choose_threshold": "._threshold",
        "platt": "._platt",
        "reranker_fingerprint": "._rerank",
        "score_features": "._features",
    },
)
