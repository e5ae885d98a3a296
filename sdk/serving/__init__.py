"""`tamis serve`: an HTTP server (TEI / OpenAI-compatible embed, search, rerank) with micro-batching."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "MicroBatcher": "._batching",
        "QueueFullError": "._batching",
        "ServerThread": "._server",
        "create_app": "._app",
        "run": "._server",
        "server_config": "._server",
    },
)
