"""Where a training run's two expensive steps run when not in this process: teacher scoring and corpus encoding.

A *workers* object (`tamis.distributed.RayWorkers` runs both on a Ray actor pool) has two methods:

* ``score_pairs(source, pairs, *, batch_size, chunk)`` -- a cross-encoder teacher's logits of
  ``pairs``, ``chunk`` at a time, in order: it becomes the teacher's `Teacher.runner`, so the score
  cache stays in this process, is written as the chunks come and is shared with in-process runs;
* ``encode_documents(model, texts, **encode_options)`` -- what ``SentenceTransformer.encode_document``
  gives for ``texts``, computed by workers that load ``model`` (a `MinerRef`) themselves.

The mining itself stays sentence-transformers' ``mine_hard_negatives`` (or tamis's `exact_search` for
label-free runs): they get `OffloadedCorpus`, the run's model with its ``encode_document`` sent to
the workers, so the de-duplication, the search, the prompts and the embedding cache are the ones an
in-process run uses, and both find the same negatives.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tamis._errors import ModelMismatchError

__all__ = ["MinerRef", "OffloadedCorpus", "Workers", "mining_model", "offload_teacher"]


@dataclass(frozen=True, slots=True)
class MinerRef:
    """The bi-encoder a worker must load to encode like this process: what `load_bi_encoder` takes, and the
    fingerprint of the weights it must find (a worker with other weights refuses)."""

    base: str | None
    max_seq_length: int | None
    fingerprint: str


class Workers(Protocol):
    """Runs a training run's teacher scoring and corpus encoding elsewhere (see the module docstring)."""

    def score_pairs(
        self, source: str, pairs: Sequence[tuple[str, str]], *, batch_size: int, chunk: int
    ) -> Iterator[np.ndarray]: ...

    def encode_documents(self, model: MinerRef, texts: list[str], **encode_options: Any) -> np.ndarray: ...


def offload_teacher(teacher: Any, workers: Workers | None) -> None:
    """Score ``teacher``'s pairs on ``workers``: a cross-encoder teacher, or the cross-encoders of an
    ensemble (other kinds score where they are: a /rerank server remotely, a bi-encoder here)."""
    if teacher is None or workers is None:
        return
    for _, member in getattr(teacher, "members", [(1.0, teacher)]):
        if member.kind == "cross-encoder":
            member.runner = workers.score_pairs


#: options of ``encode_document`` that only make sense in this process (the workers return numpy arrays)
_LOCAL_ONLY = ("pool", "show_progress_bar", "convert_to_numpy", "convert_to_tensor", "device", "chunk_size")


class OffloadedCorpus:
    """``model`` (a loaded ``SentenceTransformer``) whose ``encode_document`` runs on ``workers``.

    Everything else (``encode_query``, ``similarity``, ``device``, the model card...) is the model's
    own, so a function given this object mines exactly as with the model.
    """

    def __init__(self, model: Any, ref: MinerRef, workers: Workers) -> None:
        self._model, self._ref, self._workers = model, ref, workers
        #: texts the workers encoded for this run
        self.encoded = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode_document(self, sentences: str | list[str], **options: Any) -> np.ndarray:
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if options.get("convert_to_tensor"):
            raise ValueError("the workers return numpy arrays: call encode_document with convert_to_numpy=True")
        opts = {k: v for k, v in options.items() if k not in _LOCAL_ONLY}
        vecs = np.asarray(self._workers.encode_documents(self._ref, texts, **opts))
        self.encoded += len(texts)
        if vecs.shape[0] != len(texts):
            raise ModelMismatchError(f"the workers gave {vecs.shape[0]} embeddings for {len(texts)} documents")
        return vecs[0] if single else vecs


def mining_model(model: Any, ref: MinerRef, workers: Workers | None) -> Any:
    """``model`` itself, or with its corpus encoding on ``workers`` when there are some."""
    return model if workers is None else OffloadedCorpus(model, ref, workers)
