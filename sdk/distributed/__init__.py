"""Beyond one machine: the ingest (and the training's expensive steps) on a Ray cluster; Ray is the ``ray`` extra."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "RayConfig": "._config",
        "RayPairScorer": "._pairs",
        "RayWorkers": "._training",
        "index_distributed": "._ingest",
    },
)
