"""A training run's expensive steps on a Ray actor pool: `RayWorkers` (``train_bi_encoder(..., workers=)``).

Teacher scoring goes through `RayPairScorer` (the score cache stays with the driver's teacher);
the corpus encoding for hard-negative mining goes to `EncodeDocuments` actors, each loading the
run's bi-encoder as the driver did (its fingerprint checked) and calling the same
``encode_document``. The search over the embeddings stays sentence-transformers' (see
`tamis.training._workers`), so the negatives are those of an in-process run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tamis._errors import ModelMismatchError
from tamis.distributed._config import RayConfig, gpus_per_actor, import_ray, limit_buffering, start_ray
from tamis.distributed._pairs import RayPairScorer
from tamis.training._workers import MinerRef

__all__ = ["EncodeDocuments", "RayWorkers"]


class EncodeDocuments:
    """Ray actor: the run's bi-encoder (float32, loaded by `load_bi_encoder` like the driver's), a block's embeddings."""

    def __init__(self, *, ref: MinerRef, device: str, options: dict[str, Any]) -> None:
        from tamis.training._trainer import load_bi_encoder

        enc = load_bi_encoder(ref.base, device, ref.max_seq_length)
        if enc.fingerprint != ref.fingerprint:
            raise ModelMismatchError(
                f"the actor loaded {ref.base or 'the default model'!r} with fingerprint {enc.fingerprint}, the driver "
                f"mines with {ref.fingerprint}: give every node the same model files"
            )
        self.model = enc.model
        self.options = options

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vecs = self.model.encode_document(
            [str(t) for t in block["text"]], convert_to_numpy=True, show_progress_bar=False, **self.options
        )
        return {"i": block["i"], "vector": np.asarray(vecs, dtype=np.float32)}


class RayWorkers:
    """Teacher scoring and corpus encoding of a training run on a Ray actor pool.

    Example:
        >>> from tamis.training import train_bi_encoder                             # doctest: +SKIP
        >>> train_bi_encoder("./scifact", "./student", method="distill", teacher="./teacher",
        ...                  workers=RayWorkers(RayConfig(address="auto", num_actors=4)))  # doctest: +SKIP
    """

    def __init__(self, config: RayConfig | None = None) -> None:
        self.config = config or RayConfig()
        self.pairs = RayPairScorer(self.config)

    def score_pairs(
        self, source: str, pairs: Sequence[tuple[str, str]], *, batch_size: int, chunk: int
    ) -> Iterator[np.ndarray]:
        """A cross-encoder's logits of ``pairs``, ``chunk`` at a time, in order (`RayPairScorer`)."""
        return self.pairs(source, pairs, batch_size=batch_size, chunk=chunk)

    def encode_documents(self, model: MinerRef, texts: list[str], **options: Any) -> np.ndarray:
        """``encode_document(texts, **options)`` of ``model``, computed by the actors, in the order of ``texts``."""
        cfg = self.config
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        start_ray(cfg)
        ray = import_ray()
        limit_buffering(cfg)
        gpus = gpus_per_actor(cfg)
        ds = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)]).map_batches(
            EncodeDocuments, batch_size=cfg.batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=cfg.num_actors), num_cpus=cfg.num_cpus_per_actor, num_gpus=gpus,
            fn_constructor_kwargs={"ref": model, "device": "cuda" if gpus > 0 else "cpu", "options": options},
        )
        out: np.ndarray | None = None
        seen = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            vecs = batch["vector"]
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[batch["i"].astype(np.int64)] = vecs
            seen += len(vecs)
        if out is None or seen != len(texts):
            raise ModelMismatchError(f"the actors encoded {seen} of {len(texts)} documents")
        return out
