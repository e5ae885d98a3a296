"""Documents and where they come from: `Document`, the JSONL / BEIR / folder loaders, and the token-aware `Chunker`."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "Chunk": "._documents",
        "Chunker": "._documents",
        "Document": "._documents",
        "DocumentSource": "._documents",
        "load_beir": "._documents",
        "load_beir_queries": "._documents",
        "load_data": "._documents",
        "load_directory": "._documents",
        "load_jsonl": "._documents",
        "load_qrels": "._documents",
    },
)
