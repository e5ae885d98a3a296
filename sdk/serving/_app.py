"""`tamis serve`: a local model (on the GPU when present) behind a TEI-compatible HTTP API.

Endpoints (JSON in, JSON out):

=====================  ==================================================================
``POST /embed``        TEI: ``{"inputs": str | [str], "prompt_name"?: "query"}`` -> ``[[float]]``
``POST /v1/embeddings`` OpenAI: ``{"input": str | [str], "encoding_format"?: "float" | "base64"}``
``POST /rerank``       TEI: ``{"query", "texts", "raw_scores"?, "return_text"?}`` -> ``[{"index", "score"}]``
                       (only with a cross-encoder, ``--reranker``)
``POST /search``       ``{"query": str}`` or ``{"queries": [str | {"_id", "text"}]}``, ``k``, ``filter``,
                       ``score_threshold``, ``min_relevance``, ``relevance_filter``, ``with_text``:
                       the JSON of ``tamis search --json``
                       (one ``{"query_id", "hits"}`` object per query in batch mode)
``GET /info``          TEI's fields plus ``"tamis": {"fingerprint", "dim", "prompts", ...}``
``GET /health``        200 when the model is loaded
=====================  ==================================================================

Vectors are always unit-length and inputs always truncated to the model's maximum length (TEI's
``normalize`` / ``truncate`` request fields are accepted and have no other effect).

Concurrent requests are batched dynamically: every text goes through a `MicroBatcher`, which
runs the model once per batch (up to ``max_batch_size`` texts, waiting at most ``max_wait_ms`` for
company) in a worker thread, so the event loop keeps accepting requests while the model runs.

Security: binds 127.0.0.1 unless told otherwise; bodies over ``max_request_bytes`` get 413 before
they are parsed; with an API key every endpoint but ``/health`` wants ``Authorization: Bearer KEY``
(401 otherwise). The key is compared in constant time and never logged.

Example:
    >>> app = create_app(load_encoder(), api_key="s3cret")       # doctest: +SKIP
    >>> run(app, host="127.0.0.1", port=8080)                    # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tamis._errors import ConfigError, TamisError
from tamis._version import __version__
from tamis.encoders import Encoder
from tamis.serving._batching import MicroBatcher

if TYPE_CHECKING:  # pragma: no cover
    from starlette.requests import Request
    from starlette.responses import Response

    from tamis.collection import Collection

__all__ = ["ServerThread", "create_app", "run"]

logger = logging.getLogger("tamis.serve")

DEFAULT_MAX_REQUEST_BYTES = 2_000_000
DEFAULT_MAX_CLIENT_BATCH_SIZE = 512

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def _require_serve_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"tamis serve needs starlette and uvicorn ({exc.name} is missing); "
            'install them with `pip install "tamis[serve]"`'
        ) from exc


class _Guard:
    """ASGI middleware: API key (401) and request size limit (413), before any parsing."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_request_bytes: int) -> None:
        self.app = app
        self._key = api_key.encode() if api_key else None
        self.max_request_bytes = max_request_bytes
        self.state: Any = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self._key is not None and scope.get("path") != "/health":
            given = headers.get("authorization", b"")
            token = given[7:] if given[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(token, self._key):
                logger.warning("refused %s %s: missing or wrong API key", scope.get("method"), scope.get("path"))
                await _send_json(send, 401, _error("missing or wrong API key: send 'Authorization: Bearer <key>'",
                                                   "Unauthorized"), extra=[(b"www-authenticate", b"Bearer")])
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_request_bytes:
            await _send_json(send, 413, _too_large(int(length), self.max_request_bytes))
            return
        # read the body here, with the limit, whatever Content-Length says (or chunked encoding)
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_bytes:
                await _send_json(send, 413, _too_large(size, self.max_request_bytes))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _error(message: str, error_type: str) -> dict[str, Any]:
    return {"error": message, "error_type": error_type}


def _too_large(size: int, limit: int) -> dict[str, Any]:
    return _error(f"request body of {size:,}+ bytes is over the limit of {limit:,} bytes; send smaller batches",
                  "PayloadTooLarge")


async def _send_json(send: Any, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class _Invalid(Exception):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


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


def create_app(
    encoder: Encoder,
    *,
    collection: Collection | None = None,
    reranker: Any | None = None,
    api_key: str | None = None,
    max_batch_size: int = 64,
    max_wait_ms: float = 2.0,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_client_batch_size: int = DEFAULT_MAX_CLIENT_BATCH_SIZE,
    encode_batch_size: int = 32,
) -> ASGIApp:
    """The ASGI app of ``tamis serve`` (a Starlette app behind the key / size guard).

    Args:
        encoder: the embedding model (any tamis encoder).
        collection: serve ``/search`` on it (its encoder must be ``encoder``'s model).
        reranker: a sentence-transformers ``CrossEncoder``: serves ``/rerank``.
        api_key: require ``Authorization: Bearer <api_key>`` on every endpoint but ``/health``.
        max_batch_size: most texts the dynamic batcher hands to the model at once.
        encode_batch_size: most texts per forward pass within that (the encoder sorts them by
            length first, so smaller passes pad less; raise it on a GPU).
        max_wait_ms: how long a lone request waits for others to share its batch.
        max_request_bytes: larger request bodies get 413.
        max_client_batch_size: most texts in one request (more gets 413, as TEI does).
    """
    _require_serve_extra()
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    if encode_batch_size < 1:
        raise ConfigError(f"encode_batch_size must be positive, got {encode_batch_size}")
    if max_request_bytes < 1 or max_client_batch_size < 1:
        raise ConfigError(
            f"max_request_bytes and max_client_batch_size must be positive, got {max_request_bytes}, {max_client_batch_size}"
        )
    if collection is not None and collection.manifest is not None:
        collection._check_encoder(encoder)
    wait = max_wait_ms / 1000.0

    def batcher(kind: str) -> MicroBatcher[str, np.ndarray]:
        def run(texts: list[str]) -> list[np.ndarray]:
            return list(encoder.encode(texts, kind=kind, batch_size=encode_batch_size))  # type: ignore[arg-type]
        return MicroBatcher(run, max_batch_size=max_batch_size, max_wait_s=wait)

    batchers = {"document": batcher("document"), "query": batcher("query")}
    rerank_batcher: MicroBatcher[tuple[str, str], float] | None = None
    if reranker is not None:
        def score(pairs: list[tuple[str, str]]) -> list[float]:
            import torch

            raw = reranker.predict(pairs, batch_size=max_batch_size, activation_fn=torch.nn.Identity(),
                                   show_progress_bar=False, convert_to_numpy=True)
            return [float(x) for x in np.asarray(raw, dtype=np.float64).reshape(len(pairs), -1)[:, 0]]
        rerank_batcher = MicroBatcher(score, max_batch_size=max_batch_size, max_wait_s=wait)

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

    def endpoint(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except _Invalid as exc:
                error_type = "PayloadTooLarge" if exc.status == 413 else "Validation"
                return JSONResponse(_error(str(exc), error_type), status_code=exc.status)
            except TamisError as exc:
                return JSONResponse(_error(f"{type(exc).__name__}: {exc}", "Validation"), status_code=422)
        return wrapped

    @endpoint
    async def embed(request: Request) -> Response:
        data = await body_of(request)
        texts = _texts(data.get("inputs"), "inputs", max_client_batch_size)
        vecs = await embed_texts(texts, kind_of(data.get("prompt_name")))
        return JSONResponse(vecs.tolist())

    @endpoint
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

    @endpoint
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
        scores = raw if data.get("raw_scores") else [float(1.0 / (1.0 + np.exp(-s))) for s in raw]
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        return JSONResponse([
            {"index": i, "score": scores[i], **({"text": texts[i]} if data.get("return_text") else {})} for i in order
        ])

    @endpoint
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
        extra: dict[str, Any] = {}  # calibrated collections: passed only when asked for
        if data.get("min_relevance") is not None:
            extra["min_relevance"] = data["min_relevance"]
        if data.get("relevance_filter") is False:
            extra["relevance_filter"] = False
        vecs = await embed_texts(texts, "query")
        results = await asyncio.to_thread(
            collection.search_vectors, vecs, k, filter=data.get("filter"),
            score_thresholds=None if threshold is None else [float(threshold)] * len(texts), **extra,
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

    routes = [
        Route("/embed", embed, methods=["POST"]),
        Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
        Route("/embeddings", openai_embeddings, methods=["POST"]),
        Route("/rerank", rerank, methods=["POST"]),
        Route("/search", search, methods=["POST"]),
        Route("/info", info, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.batchers = batchers
    app.state.rerank_batcher = rerank_batcher
    guarded = _Guard(app, api_key=api_key, max_request_bytes=max_request_bytes)
    guarded.state = app.state  # batchers, for tests and benchmarks
    return guarded


def run(app: Any, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn until interrupted."""
    _require_serve_extra()
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("binding %s: the server is reachable from other machines; set an API key (--api-key)", host)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class ServerThread:
    """Run an ASGI app with uvicorn in a background thread (tests, notebooks, benchmarks).

    Example:
        >>> with ServerThread(create_app(FakeEncoder())) as url:   # doctest: +SKIP
        ...     RemoteEncoder(url).encode(["hi"])
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        _require_serve_extra()
        import socket

        import uvicorn

        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, int(self._sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        # log_config=None: leave the host program's logging alone (records propagate to its handlers)
        config = uvicorn.Config(app, log_level=log_level, log_config=None, lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread: Any = None

    def start(self) -> str:
        import threading
        import time

        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="tamis-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
