"""Documents and where they come from: `Document`, the JSONL / BEIR / folder loaders, checked BEIR splits (`TrainingData`), and the token-aware `Chunker`."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "Chunk": "._documents",
        "Chunker": "._chunker",
        "Document": "._documents",
        "DocumentSource": "._documents",
        "OnInvalid": "._documents",
        "TrainingData": "._splits",
        "load_beir": "._loaders",
        "load_beir_queries": "._loaders",
        "load_data": "._loaders",
        "load_directory": "._loaders",
        "load_jsonl": "._loaders",
        "load_training_data": "._splits",
        "load_qrels": "._loaders",
    },
)
