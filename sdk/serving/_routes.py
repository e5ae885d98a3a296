"""The routes of `tamis serve`: the embedding routes (`tamis.serving._routes_embed`), TEI /rerank,
/search, /info, /health, /metrics, and OpenAI /v1/models."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tamis._math import sigmoid
from tamis._version import __version__
from tamis.serving._context import Context
from tamis.serving._errors import HttpError, endpoint, invalid
from tamis.serving._inputs import get_bool, get_float, get_int, get_texts
from tamis.serving._routes_embed import embed_routes

if TYPE_CHECKING:  # pragma: no cover
    from starlette.requests import Request
    from starlette.responses import Response

    from tamis.encoders import Encoder

__all__ = ["MAX_K", "routes"]

#: most hits one query may ask for (``k``)
MAX_K = 10_000


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


def _queries(data: Mapping[str, Any], limit: int, dim: int | None) -> tuple[bool, list[str], list[str] | None, Any]:
    """(single, ids, texts or None, vectors or None) of a /search request."""
    given = [key for key in ("query", "queries", "vectors") if key in data]
    if len(given) != 1:
        raise invalid("send one of 'query' (a string), 'queries' (a list) or 'vectors' (a list of query vectors)")
    if "query" in data:
        texts = get_texts(data["query"], "query", 1)
        return True, [], texts, None
    if "vectors" in data:
        raw = data["vectors"]
        if not isinstance(raw, list) or not raw or not all(isinstance(v, list) for v in raw):
            raise invalid("'vectors' must be a non-empty list of lists of numbers", "vectors")
        if len(raw) > limit:
            raise HttpError(f"batch size {len(raw)} > maximum allowed batch size {limit}", "Validation", param="vectors")
        try:
            vecs = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError):
            raise invalid("'vectors' must be a list of equally long lists of numbers", "vectors") from None
        if vecs.ndim != 2 or (dim is not None and vecs.shape[1] != dim) or not np.isfinite(vecs).all():
            raise invalid(f"'vectors' must be finite vectors of dimension {dim}", "vectors")
        return False, [str(i) for i in range(len(vecs))], None, vecs
    raw = data["queries"]
    if not isinstance(raw, list) or not raw:
        raise invalid("'queries' must be a non-empty list of strings or {'_id', 'text'} objects", "queries")
    if len(raw) > limit:
        raise HttpError(f"batch size {len(raw)} > maximum allowed batch size {limit}", "Validation", param="queries")
    ids, texts = [], []
    for i, q in enumerate(raw):
        q_id: Any = str(i)
        if isinstance(q, Mapping):
            q_id, q = q.get("_id", q.get("id", str(i))), q.get("text")
        if not isinstance(q, str) or not q.strip():
            raise HttpError(f"query {i} is not a non-empty string", "Empty", param="queries")
        ids.append(str(q_id))
        texts.append(q)
    return False, ids, texts, None


def _thresholds(data: Mapping[str, Any], n: int) -> list[float | None] | None:
    raw = data.get("score_thresholds")
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != n:
        raise invalid(f"'score_thresholds' must be a list of {n} numbers or nulls (one per query)", "score_thresholds")
    return [get_float({"t": t}, "t", -1.0, 1.0) for t in raw]


def routes(ctx: Context) -> list[Any]:
    """The routes of an app serving ``ctx``'s encoder (and its collection's /search, reranker's /rerank)."""
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    encoder, collection = ctx.encoder, ctx.collection

    @endpoint
    async def rerank(request: Request) -> Response:
        if ctx.rerank_batcher is None:
            raise HttpError("no cross-encoder is configured; start tamis serve with --reranker DIR", "Backend")
        data = await ctx.body(request)
        query = data.get("query")
        if not isinstance(query, str):
            raise invalid("'query' must be a string", "query")
        texts = get_texts(data.get("texts"), "texts", ctx.max_client_batch_size)
        ctx.tokens.prepare([query], kind="document", truncate=True, left=False, name="query")
        ctx.tokens.prepare(texts, kind="document", truncate=True, left=False, name="texts")
        raw_scores, return_text = get_bool(data, "raw_scores", False), get_bool(data, "return_text", False)
        raw = await ctx.rerank_batcher.submit_many([(query, t) for t in texts])
        scores = raw if raw_scores else [float(p) for p in sigmoid(np.asarray(raw, dtype=np.float64))]
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        return JSONResponse([{"index": i, "score": scores[i], **({"text": texts[i]} if return_text else {})}
                             for i in order])

    @endpoint
    async def search(request: Request) -> Response:
        if collection is None:
            raise HttpError("no collection is served; start tamis serve with --collection NAME", "Backend")
        data = await ctx.body(request)
        k = get_int(data, "k", 10, 1, MAX_K)
        threshold = get_float(data, "score_threshold", -1.0, 1.0)
        min_relevance = get_float(data, "min_relevance", 0.0, 1.0)
        relevance_filter = get_bool(data, "relevance_filter", True)
        exact = get_bool(data, "exact", False)
        hnsw_ef = get_int(data, "hnsw_ef", None, 1, 100_000)
        filt = data.get("filter")
        if filt is not None and not isinstance(filt, Mapping):
            raise invalid("'filter' must be an object such as {\"lang\": \"en\"}", "filter")
        single, ids, texts, vecs = _queries(data, ctx.max_client_batch_size, encoder.dim)
        thresholds = _thresholds(data, len(ids) if not single else 1)
        with_text = get_bool(data, "with_text", single)
        mode, fusion, rrf_k = data.get("mode"), data.get("fusion"), get_int(data, "rrf_k", 60, 1, 100_000)
        if mode not in (None, "dense", "sparse", "hybrid") or fusion not in (None, "rrf", "dbsf"):
            raise invalid("'mode' must be dense, sparse or hybrid and 'fusion' rrf or dbsf", "mode")
        if texts is not None:
            vecs, _ = await ctx.embed(texts, "query", name="query" if single else "queries")
        sparse_texts = texts if texts is not None else data.get("sparse_texts")
        sparse = None
        if mode in ("sparse", "hybrid"):  # the BM25 side is encoded here, from the queries' texts
            if not isinstance(sparse_texts, list) or len(sparse_texts) != len(vecs) or not all(
                isinstance(t, str) for t in sparse_texts
            ):
                raise invalid(f"mode {mode!r} needs the queries' texts ('queries', or 'sparse_texts' with vectors)",
                              "sparse_texts")
            sparse = await asyncio.to_thread(collection.sparse_queries, sparse_texts, mode)
        results = await asyncio.to_thread(
            collection.search_vectors, vecs, k, filter=filt, score_threshold=threshold, hnsw_ef=hnsw_ef,
            exact=exact, min_relevance=min_relevance, score_thresholds=thresholds,
            relevance_filter=None if relevance_filter else False,  # None: not set
            mode=mode, fusion=fusion, rrf_k=rrf_k, sparse_vectors=sparse,
            query_texts=sparse_texts if mode in ("sparse", "hybrid") else texts,
        )
        if single:
            return JSONResponse({"query": texts[0] if texts else None, "hits": [h.to_dict() for h in results[0]]})
        return JSONResponse([
            {"query_id": q_id, "hits": [h.to_dict(with_text=with_text) for h in hits]}
            for q_id, hits in zip(ids, results, strict=True)
        ])

    calibrated = None
    if collection is not None and collection.manifest is not None:
        calibrated = any(e.get("name") == "relevance" for e in collection.manifest.get("stages") or ())
    info_body = {
        "model_id": encoder.name,
        "model_sha": None,
        "model_dtype": str(getattr(encoder, "dtype", "float32")),
        "model_type": {"embedding": {"pooling": _pooling(encoder)}},
        "max_concurrent_requests": ctx.max_concurrent_requests,
        "max_input_length": encoder.max_seq_length,
        "max_batch_tokens": ctx.max_batch_size * encoder.max_seq_length,
        "max_batch_requests": ctx.max_batch_size,
        "max_client_batch_size": ctx.max_client_batch_size,
        "payload_limit": ctx.max_request_bytes,
        "auto_truncate": True,
        "tokenization_workers": 1,
        "version": f"tamis-{__version__}",
        "tamis": {
            "fingerprint": encoder.fingerprint,
            "dim": encoder.dim,
            "backend": getattr(encoder, "backend", None),
            "device": getattr(encoder, "device", "cpu"),
            "prompts": _prompts(encoder),
            "max_queue_size": ctx.max_queue_size,
            "collection": None if collection is None else collection.name,
            "calibrated": calibrated,
            "reranker": None if ctx.reranker is None else str(getattr(ctx.reranker, "_tamis_name", "cross-encoder")),
        },
    }
    if ctx.reranker is not None:
        info_body["rerank_model"] = info_body["tamis"]["reranker"]  # type: ignore[index]

    async def info(request: Request) -> Response:
        return JSONResponse(info_body)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics(request: Request) -> Response:
        body, content_type = ctx.metrics.render()
        return Response(body, media_type=content_type.split(";")[0], headers={"content-type": content_type})

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": encoder.name, "object": "model", "owned_by": "tamis"}]})

    return [
        *embed_routes(ctx),
        Route("/", info, methods=["GET"]),
        Route("/rerank", rerank, methods=["POST"]),
        Route("/search", search, methods=["POST"]),
        Route("/info", info, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
