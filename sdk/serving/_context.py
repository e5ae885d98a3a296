"""What `tamis serve`'s handlers share: the model, its tokenizer, the batchers, the limits, the metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tamis.serving._batching import MicroBatcher
from tamis.serving._errors import HttpError, invalid
from tamis.serving._inputs import Prepared, Tokens, get_bool, get_int, parse_json
from tamis.serving._metrics import Metrics

if TYPE_CHECKING:  # pragma: no cover
    from starlette.requests import Request

    from tamis.collection import Collection
    from tamis.encoders import Encoder

__all__ = ["Context"]

#: above this many characters, a request is tokenised in a worker thread (off the event loop)
_INLINE_CHARS = 20_000


@dataclass
class Context:
    encoder: Encoder
    tokens: Tokens
    batchers: dict[str, MicroBatcher[str, np.ndarray]]
    metrics: Metrics
    max_batch_size: int
    max_client_batch_size: int
    max_request_bytes: int
    max_concurrent_requests: int
    max_queue_size: int
    collection: Collection | None = None
    reranker: Any | None = None
    rerank_batcher: MicroBatcher[tuple[str, str], float] | None = None
    #: per-token vectors by kind (``/embed_all``); empty when the encoder has no ``encode_tokens``
    token_batchers: dict[str, MicroBatcher[str, np.ndarray]] = field(default_factory=dict)

    async def body(self, request: Request) -> Mapping[str, Any]:
        return parse_json(await request.body())

    @staticmethod
    def kind_of(prompt_name: Any) -> str:
        if prompt_name in (None, "document", "passage"):
            return "document"
        if prompt_name == "query":
            return "query"
        raise invalid(f"prompt_name {prompt_name!r} is not one of 'query', 'document' (or none)", "prompt_name")

    async def prepare(self, texts: list[str], *, kind: str, truncate: bool, left: bool, name: str) -> Prepared:
        if sum(len(t) for t in texts) <= _INLINE_CHARS:
            prep = self.tokens.prepare(texts, kind=kind, truncate=truncate, left=left, name=name)
        else:
            prep = await asyncio.to_thread(self.tokens.prepare, texts, kind=kind, truncate=truncate, left=left, name=name)
        self.metrics.count_tokens(prep.tokens)
        return prep

    def dimensions(self, data: Mapping[str, Any]) -> int | None:
        """The ``dimensions`` field: None, or 1..dim (more than the model has: 413, as TEI)."""
        d = get_int(data, "dimensions", None, 1, 2**31 - 1)
        if d is not None and d > self.encoder.dim:
            raise HttpError(f"dimensions {d} is more than the model's {self.encoder.dim}; ask for at most "
                            f"{self.encoder.dim}", "Validation", param="dimensions")
        return d

    def normalize(self, data: Mapping[str, Any]) -> bool:
        """The ``normalize`` field. tamis encoders return the model's vectors normalised; ``false`` is
        honoured for models whose own pipeline ends in a Normalize module (their output is unit-length
        anyway) and refused for the others, whose raw vectors the encoder protocol does not give."""
        norm = get_bool(data, "normalize", True)
        if not norm and not getattr(self.encoder, "normalizes", False):
            raise invalid("normalize: false is not available for this model: tamis serves unit-length vectors "
                          "and the model's own pipeline has no Normalize module; send normalize: true", "normalize")
        return norm

    async def embed(self, texts: list[str], kind: str, *, truncate: bool = True, left: bool = False,
                    dimensions: int | None = None, normalize: bool = True,
                    name: str = "inputs") -> tuple[np.ndarray, list[int]]:
        """(vectors, token counts) of one request's texts, through the batcher of ``kind``."""
        prep = await self.prepare(texts, kind=kind, truncate=truncate, left=left, name=name)
        rows = await self.batchers[kind].submit_many(prep.texts)
        vecs = np.stack(rows).astype(np.float32, copy=False)
        if dimensions is not None and dimensions < vecs.shape[1]:
            vecs = np.ascontiguousarray(vecs[:, :dimensions])
            if normalize:  # Matryoshka: truncate, then back to unit length
                vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs, prep.tokens
