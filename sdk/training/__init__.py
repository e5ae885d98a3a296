"""Training bi-encoders and cross-encoders (sentence-transformers trainers): configs, data, teachers, recipes, safe checkpoints."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "Direction": "._config",
        "RerankerConfig": "._config",
        "TeacherScorer": "._teacher",
        "TrainConfig": "._config",
        "TrainResult": "._output",
        "config_from": "._config",
        "train_bi_encoder": "._bi_encoder",
        "train_reranker": "._reranker",
    },
)
