"""The request handlers of `tamis serve`: TEI /embed and /rerank, OpenAI /v1/embeddings, /search, /info, /health."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tamis._math import sigmoid
from tamis._version import __version__
from tamis.serving._batching import MicroBatcher
from tamis.serving._guard import _endpoint, _error, _Invalid

if TYPE_CHECKING:  # pragma: no cover
    from starlette.requests import Request
    from starlette.responses import Response

    from tamis.collection import Collection
    from tamis.encoders import Encoder



def _texts(value: Any, field: str, limit: int) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _Invalid(f"{field!r} must be a string or a non-empty list of strings")
    if len(texts) > limit:
        raise _Invalid(f"batch size {len(texts)} > maximum allowed batch size {limit}", status=413)
    return texts


def _prompts(encoder: Encoder) -> dict[str, str]:
    """Non-empty prompts of the encoder's model, by name."""
    model = getattr(encoder, "model", None)
    prompts = getattr(model, "prompts", None) or getattr(encoder, "_prompts", None) or {}
    return {str(k): str(v) for k, v in prompts.items() if v}


def _pooling(encoder: Encoder) -> str:
    for module in getattr(encoder, "model", None) or []:
        mode = getattr(module, "pooling_mode", None) or getattr(module, "get_pooling_mode_str", lambda: None)()
        if mode:
            return str(mode)
    return "mean"


def routes(
    encoder: Encoder,
    *,
    collection: Collection | None,
    reranker: Any | None,
    batchers: dict[str, MicroBatcher[str, np.ndarray]],
    rerank_batcher: MicroBatcher[tuple[str, str], float] | None,
    max_batch_size: int,
    max_client_batch_size: int,
    max_request_bytes: int,
) -> list[Any]:
    """The routes of an app serving ``encoder`` (and ``collection``'s /search, ``reranker``'s /rerank).

    Every text goes through ``batchers`` (by kind: ``"document"``, ``"query"``), every (query, text)
    pair through ``rerank_batcher``; the limits are `create_app`'s.
    """
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    prompts = _prompts(encoder)

    async def embed_texts(texts: list[str], kind: str) -> np.ndarray:
        rows = await batchers[kind].submit_many(texts)
        return np.stack(rows).astype(np.float32, copy=False)

    def kind_of(prompt_name: Any) -> str:
        if prompt_name in (None, "document", "passage"):
            return "document"
        if prompt_name == "query":
            return "query"
        raise _Invalid(f"prompt_name {prompt_name!r} is not one of 'query', 'document' (or none)")

    async def body_of(request: Request) -> Mapping[str, Any]:
        try:
            data = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Invalid(f"the request body is not valid JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise _Invalid("the request body must be a JSON object")
        return data

    @_endpoint
    async def embed(request: Request) -> Response:
        data = await body_of(request)
        texts = _texts(data.get("inputs"), "inputs", max_client_batch_size)
        vecs = await embed_texts(texts, kind_of(data.get("prompt_name")))
        return JSONResponse(vecs.tolist())

    @_endpoint
    async def openai_embeddings(request: Request) -> Response:
        data = await body_of(request)
        texts = _texts(data.get("input"), "input", max_client_batch_size)
        fmt = data.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise _Invalid(f"encoding_format {fmt!r} is not one of 'float', 'base64'")
        vecs = await embed_texts(texts, kind_of(data.get("prompt_name")))
        rows: list[Any] = (
            vecs.tolist() if fmt == "float"
            else [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vecs]
        )
        tokens = sum(len(t.split()) for t in texts)
        return JSONResponse({
            "object": "list",
            "data": [{"object": "embedding", "embedding": r, "index": i} for i, r in enumerate(rows)],
            "model": encoder.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    @_endpoint
    async def rerank(request: Request) -> Response:
        if rerank_batcher is None:
            return JSONResponse(_error("no cross-encoder is configured; start tamis serve with --reranker DIR",
                                       "Backend"), status_code=424)
        data = await body_of(request)
        query = data.get("query")
        if not isinstance(query, str) or not query:
            raise _Invalid("'query' must be a non-empty string")
        texts = _texts(data.get("texts"), "texts", max_client_batch_size)
        raw = await rerank_batcher.submit_many([(query, t) for t in texts])
        scores = raw if data.get("raw_scores") else [float(p) for p in sigmoid(np.asarray(raw, dtype=np.float64))]
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        return JSONResponse([
            {"index": i, "score": scores[i], **({"text": texts[i]} if data.get("return_text") else {})} for i in order
        ])

    @_endpoint
    async def search(request: Request) -> Response:
        if collection is None:
            return JSONResponse(_error("no collection is served; start tamis serve with --collection NAME",
                                       "Backend"), status_code=424)
        data = await body_of(request)
        k = data.get("k", 10)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise _Invalid(f"'k' must be a positive integer, got {k!r}")
        threshold = data.get("score_threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise _Invalid(f"'score_threshold' must be a number, got {threshold!r}")
        single = "query" in data
        if single == ("queries" in data):
            raise _Invalid("send either 'query' (one string) or 'queries' (a list), not both, not neither")
        if single:
            ids: list[str] = []
            texts = _texts(data["query"], "query", 1)
        else:
            raw = data["queries"]
            if not isinstance(raw, list) or not raw:
                raise _Invalid("'queries' must be a non-empty list of strings or {'_id', 'text'} objects")
            ids, texts = [], []
            for i, q in enumerate(raw):
                if isinstance(q, Mapping):
                    q_id, q = q.get("_id", q.get("id", str(i))), q.get("text")
                else:
                    q_id = str(i)
                if not isinstance(q, str) or not q.strip():
                    raise _Invalid(f"query {i} is not a non-empty string")
                ids.append(str(q_id))
                texts.append(q)
            if len(texts) > max_client_batch_size:
                raise _Invalid(f"batch size {len(texts)} > maximum allowed batch size {max_client_batch_size}", 413)
        if any(not t.strip() for t in texts):
            raise _Invalid("a query must be a non-empty string")
        with_text = bool(data.get("with_text", single))
        vecs = await embed_texts(texts, "query")
        results = await asyncio.to_thread(
            collection.search_vectors, vecs, k, filter=data.get("filter"), score_threshold=threshold,
            min_relevance=data.get("min_relevance"),
            relevance_filter=False if data.get("relevance_filter") is False else None,  # None: not set
        )
        if single:
            return JSONResponse({"query": texts[0], "hits": [h.to_dict() for h in results[0]]})
        return JSONResponse([
            {"query_id": q_id, "hits": [h.to_dict(with_text=with_text) for h in hits]}
            for q_id, hits in zip(ids, results, strict=True)
        ])

    info_body = {
        "model_id": encoder.name,
        "model_sha": None,
        "model_dtype": str(getattr(encoder, "dtype", "float32")),
        "model_type": {"embedding": {"pooling": _pooling(encoder)}},
        "max_concurrent_requests": 512,
        "max_input_length": encoder.max_seq_length,
        "max_batch_tokens": max_batch_size * encoder.max_seq_length,
        "max_batch_requests": max_batch_size,
        "max_client_batch_size": max_client_batch_size,
        "payload_limit": max_request_bytes,
        "auto_truncate": True,
        "tokenization_workers": 1,
        "version": f"tamis-{__version__}",
        "tamis": {
            "fingerprint": encoder.fingerprint,
            "dim": encoder.dim,
            "backend": getattr(encoder, "backend", None),
            "device": getattr(encoder, "device", "cpu"),
            "prompts": prompts,
            "collection": None if collection is None else collection.name,
            "reranker": None if reranker is None else str(getattr(reranker, "_tamis_name", "cross-encoder")),
        },
    }

    async def info(request: Request) -> Response:
        return JSONResponse(info_body)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": encoder.name, "object": "model", "owned_by": "tamis"}]})

    return [
        Route("/embed", embed, methods=["POST"]),
        Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
        Route("/embeddings", openai_embeddings, methods=["POST"]),
        Route("/rerank", rerank, methods=["POST"]),
        Route("/search", search, methods=["POST"]),
        Route("/info", info, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
