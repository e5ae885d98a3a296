"""Training bi-encoders and cross-encoders (sentence-transformers trainers): configs, data, teachers, recipes, safe checkpoints."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "RerankerConfig": "._config",
        "TrainConfig": "._config",
        "TrainResult": "._train",
        "TrainingData": "._data",
        "load_training_data": "._data",
        "train_bi_encoder": "._train",
        "train_reranker": "._train",
    },
)
