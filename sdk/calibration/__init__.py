"""The Cosine Adapter: a query-dependent map from cosine scores to a calibrated probability of relevance, and its threshold."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "AdapterConfig": "._adapter",
        "CalibrationData": "._adapter",
        "CosineAdapter": "._adapter",
        "ThresholdReport": "._adapter",
        "TrainingReport": "._adapter",
        "choose_threshold": "._adapter",
        "score_features": "._adapter",
    },
)
