"""Teacher scoring of (query, document) pairs on a Ray actor pool: the training's most expensive step.

`RayPairScorer` is a `tamis.training.TeacherScorer` runner: the scorer keeps its cache (only the
pairs it lacks are sent), the actors score them, one cross-encoder each, and the logits come back
in order, a chunk at a time, so the cache grows as they arrive and an interrupted run resumes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tamis.distributed._config import RayConfig, gpus_per_actor, import_ray, limit_buffering, start_ray

__all__ = ["RayPairScorer"]


class _ScorePairs:
    """Ray actor: one cross-encoder (loaded and checked as `TeacherScorer` does), logits of a block of pairs."""

    def __init__(self, *, source: str, device: str, batch_size: int) -> None:
        from tamis.training import TeacherScorer

        self.scorer = TeacherScorer(source, cache_dir=tempfile.mkdtemp(prefix="tamis-pairs-"), device=device)
        self.batch_size = batch_size

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        pairs = [(str(q), str(d)) for q, d in zip(block["query"], block["document"], strict=True)]
        out = self.scorer.model.predict(
            pairs, batch_size=self.batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False,
            convert_to_numpy=True,
        )
        return {"i": block["i"], "logit": np.asarray(out, dtype=np.float64).reshape(-1)}


class RayPairScorer:
    """Score pairs on a Ray actor pool; set as a teacher's runner.

    Example:
        >>> scorer = TeacherScorer("./reranker", cache_dir="./cache")     # doctest: +SKIP
        >>> scorer.runner = RayPairScorer(RayConfig(num_actors=4))         # doctest: +SKIP
        >>> scorer.logits([("a query", "a document")])                     # doctest: +SKIP
    """

    def __init__(self, config: RayConfig | None = None) -> None:
        self.config = config or RayConfig()

    def __call__(
        self, source: str, pairs: Sequence[tuple[str, str]], *, batch_size: int, chunk: int
    ) -> Iterator[np.ndarray]:
        """The logits of ``pairs``, ``chunk`` at a time, in order."""
        cfg = self.config
        start_ray(cfg)
        ray = import_ray()
        limit_buffering(cfg)
        gpus = gpus_per_actor(cfg)
        rows: list[dict[str, Any]] = [{"i": i, "query": q, "document": d} for i, (q, d) in enumerate(pairs)]
        ds = ray.data.from_items(rows).map_batches(
            _ScorePairs, batch_size=min(chunk, cfg.batch_size), batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=cfg.num_actors), num_cpus=cfg.num_cpus_per_actor, num_gpus=gpus,
            fn_constructor_kwargs={"source": source, "device": "cuda" if gpus > 0 else "cpu", "batch_size": batch_size},
        )
        logits = np.full(len(pairs), np.nan)
        missing = np.array([min(chunk, len(pairs) - s) for s in range(0, len(pairs), chunk)], dtype=np.int64)
        sent = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            idx = batch["i"].astype(np.int64)
            logits[idx] = batch["logit"]
            np.subtract.at(missing, idx // chunk, 1)
            while sent < len(missing) and missing[sent] == 0:  # the next chunk in order is complete
                yield logits[sent * chunk : (sent + 1) * chunk].copy()
                sent += 1
