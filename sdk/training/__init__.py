"""Training bi-encoders and cross-encoders (sentence-transformers trainers): configs, data, teachers of any kind
(cross-encoder, bi-encoder, /rerank server, ensemble), label-free pseudo-queries, recipes, safe checkpoints."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "BiEncoderTeacher": "._teacher",
        "CrossEncoderTeacher": "._teacher",
        "Direction": "._config",
        "EnsembleTeacher": "._teacher_kinds",
        "RerankTeacher": "._teacher_kinds",
        "Teacher": "._teacher",
        "RerankerConfig": "._config",
        "TeacherScorer": "._teacher",
        "TrainConfig": "._config",
        "TrainResult": "._output",
        "config_from": "._config",
        "load_teacher": "._teacher_kinds",
        "train_bi_encoder": "._bi_encoder",
        "train_reranker": "._reranker",
    },
)
