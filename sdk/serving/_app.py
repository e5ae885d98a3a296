"""`tamis serve`: a local model (on the GPU when present) behind a TEI-compatible HTTP API.

Endpoints (JSON in, JSON out; TEI's and OpenAI's request fields, checked and honoured):

=======================  ================================================================
``POST /``, ``/embed``   TEI: ``inputs``, ``normalize``, ``truncate``, ``truncation_direction``,
                         ``dimensions``, ``prompt_name`` -> ``[[float]]``
``POST /v1/embeddings``  OpenAI: ``input`` (texts or token ids), ``dimensions``,
                         ``encoding_format`` float | base64 -> ``data``, ``usage`` (real token counts)
``POST /embed_all``      TEI: ``inputs``, ``truncate``, ``truncation_direction``, ``prompt_name`` ->
                         ``[[[float]]]``, each token's vector (encoders with ``encode_tokens``)
``POST /tokenize``       TEI: ``inputs``, ``add_special_tokens`` -> tokens with offsets
``POST /decode``         TEI: ``ids``, ``skip_special_tokens`` -> texts
``POST /rerank``         TEI: ``query``, ``texts``, ``raw_scores``, ``return_text`` (with ``--reranker``)
``POST /search``         ``query`` | ``queries`` | ``vectors``, ``k``, ``filter``, ``score_threshold``,
                         ``min_relevance``, ``relevance_filter``, ``with_text``: ``tamis search --json``
                         (what `tamis.collection.RemoteCollection` calls)
``GET /info``, ``GET /`` TEI's fields (the real limits, ``rerank_model``) plus ``"tamis": {...}``
``GET /metrics``         Prometheus text format (`tamis.serving._metrics`)
``GET /health``          200 when the model is loaded; ``GET /v1/models``: the OpenAI model list
=======================  ================================================================

Isolation: each request's texts are validated and tokenised on their own before they join a
batch (`tamis.serving._inputs`), and a batch whose model call fails anyway is retried one request
at a time (`MicroBatcher`), so one bad input fails only its own request. Errors follow TEI's error
types and status codes, OpenAI's error body on ``/v1/*`` (`tamis.serving._errors`).

Concurrent requests are batched dynamically: every text goes through a `MicroBatcher`, which
runs the model once per batch (up to ``max_batch_size`` texts, waiting at most ``max_wait_ms`` for
company) in a worker thread, so the event loop keeps accepting requests while the model runs.
More than ``max_concurrent_requests`` requests in flight, or more than ``max_queue_size`` texts
waiting, get 429 (``Overloaded``).

Security: binds 127.0.0.1 unless told otherwise; bodies over ``max_request_bytes`` get 413 before
they are parsed, JSON nested deeper than 32 levels 400, every numeric field is range-checked
(422); a body that does not arrive within ``body_timeout_s`` gets 408 (header read timeouts and
the connection bound are the server's, see `tamis.serving._server`); with an API key every
endpoint but ``/health`` wants ``Authorization: Bearer KEY`` (401 otherwise). The key is compared
in constant time and never logged; an empty key is refused.

Example:
    >>> app = create_app(load_encoder(), api_key="s3cret")       # doctest: +SKIP
    >>> run(app, host="127.0.0.1", port=8080)                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tamis._errors import ConfigError
from tamis.serving._batching import MicroBatcher
from tamis.serving._context import Context
from tamis.serving._guard import ASGIApp, _Guard
from tamis.serving._inputs import Tokens
from tamis.serving._metrics import Metrics
from tamis.serving._routes import _prompts
from tamis.serving._routes import routes as app_routes
from tamis.serving._server import _require_serve_extra

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection import Collection
    from tamis.encoders import Encoder

__all__ = ["create_app"]

DEFAULT_MAX_REQUEST_BYTES = 2_000_000
DEFAULT_MAX_CLIENT_BATCH_SIZE = 512
DEFAULT_MAX_CONCURRENT_REQUESTS = 512
DEFAULT_MAX_QUEUE_SIZE = 4096
DEFAULT_BODY_TIMEOUT_S = 30.0


def create_app(
    encoder: Encoder,
    *,
    collection: Collection | None = None,
    reranker: Any | None = None,
    api_key: str | None = None,
    max_batch_size: int = 256,
    max_wait_ms: float = 2.0,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_client_batch_size: int = DEFAULT_MAX_CLIENT_BATCH_SIZE,
    encode_batch_size: int = 32,
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    intra_op_spinning: bool = False,
) -> ASGIApp:
    """The ASGI app of ``tamis serve`` (a Starlette app behind the key / size guard).

    Args:
        encoder: the embedding model (any tamis encoder).
        collection: serve ``/search`` on it (its encoder must be ``encoder``'s model).
        reranker: a sentence-transformers ``CrossEncoder``: serves ``/rerank``.
        api_key: require ``Authorization: Bearer <api_key>`` on every endpoint but ``/health``.
        max_batch_size: most texts the dynamic batcher hands to the model at once (it sorts them by
            length and runs ``encode_batch_size`` per forward pass, so a wide window pads less; issue
            14's peer benchmark: 256 against 32 took tamis torch from 0.85x to 1.03x Infinity at 64 clients).
        encode_batch_size: most texts per forward pass within that (the encoder sorts them by
            length first, so smaller passes pad less; raise it on a GPU).
        max_wait_ms: how long a lone request waits for others to share its batch.
        max_request_bytes: larger request bodies get 413.
        max_client_batch_size: most texts in one request (more gets 413, as TEI does).
        max_concurrent_requests: most requests in flight (more get 429; /health and /metrics always answer).
        max_queue_size: most texts (or rerank pairs) waiting for the model (more get 429).
        body_timeout_s: a request body not received within this time gets 408.
        intra_op_spinning: let the model's idle intra-op threads busy-wait between calls (ONNX
            Runtime's default; off here: the cores are needed for the requests between model calls,
            and spinning doubled the CPU time per text of a 1-text request). Applied to encoders
            that have ``set_intra_op_spinning`` (the ONNX ones).

    Raises:
        ConfigError: a limit that is not positive, or an empty ``api_key`` (it would turn
            authentication off without saying so; pass None for no key).
    """
    _require_serve_extra()
    from starlette.applications import Starlette

    if encode_batch_size < 1:
        raise ConfigError(f"encode_batch_size must be positive, got {encode_batch_size}")
    if max_request_bytes < 1 or max_client_batch_size < 1:
        raise ConfigError(
            f"max_request_bytes and max_client_batch_size must be positive, got {max_request_bytes}, {max_client_batch_size}"
        )
    if api_key is not None and not api_key.strip():
        raise ConfigError("the API key is empty: pass a real key (or none at all to serve without authentication)")
    if min(max_concurrent_requests, max_queue_size) < 1 or not body_timeout_s > 0:
        raise ConfigError("max_concurrent_requests, max_queue_size and body_timeout_s must be positive, got "
                          f"{max_concurrent_requests}, {max_queue_size}, {body_timeout_s}")
    if max_queue_size < max_client_batch_size:
        raise ConfigError(f"max_queue_size ({max_queue_size}) must be at least max_client_batch_size "
                          f"({max_client_batch_size}), or the largest requests could never be queued")
    if collection is not None and collection.manifest is not None:
        collection._check_encoder(encoder)
        collection.count()  # open its shard now: an embedded collection is this process's from the start
    wait = max_wait_ms / 1000.0
    spinning = getattr(encoder, "set_intra_op_spinning", None)
    if callable(spinning):
        spinning(intra_op_spinning)

    def batcher(kind: str) -> MicroBatcher[str, np.ndarray]:
        def run(texts: list[str]) -> list[np.ndarray]:
            return list(encoder.encode(texts, kind=kind, batch_size=encode_batch_size))  # type: ignore[arg-type]
        return MicroBatcher(run, max_batch_size=max_batch_size, max_wait_s=wait, max_queue=max_queue_size)

    batchers = {"document": batcher("document"), "query": batcher("query")}
    token_batchers: dict[str, MicroBatcher[str, np.ndarray]] = {}
    if callable(getattr(encoder, "encode_tokens", None)):  # a TokenEncoder: /embed_all
        def token_batcher(kind: str) -> MicroBatcher[str, np.ndarray]:
            def run(texts: list[str]) -> list[np.ndarray]:
                return encoder.encode_tokens(texts, kind=kind)  # type: ignore[attr-defined,arg-type]
            return MicroBatcher(run, max_batch_size=max_batch_size, max_wait_s=wait, max_queue=max_queue_size)
        token_batchers = {kind: token_batcher(kind) for kind in ("document", "query")}
    rerank_batcher: MicroBatcher[tuple[str, str], float] | None = None
    if reranker is not None:
        def score(pairs: list[tuple[str, str]]) -> list[float]:
            import torch

            raw = reranker.predict(pairs, batch_size=encode_batch_size, activation_fn=torch.nn.Identity(),
                                   show_progress_bar=False, convert_to_numpy=True)
            return [float(x) for x in np.asarray(raw, dtype=np.float64).reshape(len(pairs), -1)[:, 0]]
        rerank_batcher = MicroBatcher(score, max_batch_size=max_batch_size, max_wait_s=wait, max_queue=max_queue_size)

    metrics = Metrics()
    metrics.watch({**batchers, "rerank": rerank_batcher, **{f"tokens-{k}": b for k, b in token_batchers.items()}})
    ctx = Context(
        encoder=encoder, tokens=Tokens(encoder.tokenizer, encoder.max_seq_length, _prompts(encoder)),
        batchers=batchers, metrics=metrics, max_batch_size=max_batch_size,
        max_client_batch_size=max_client_batch_size, max_request_bytes=max_request_bytes,
        max_concurrent_requests=max_concurrent_requests, max_queue_size=max_queue_size,
        collection=collection, reranker=reranker, rerank_batcher=rerank_batcher, token_batchers=token_batchers,
    )
    app = Starlette(routes=app_routes(ctx))
    app.state.batchers = batchers
    app.state.rerank_batcher = rerank_batcher
    app.state.metrics = metrics
    guarded = _Guard(app, api_key=api_key, max_request_bytes=max_request_bytes,
                     max_concurrent_requests=max_concurrent_requests, body_timeout_s=body_timeout_s, metrics=metrics)
    guarded.state = app.state  # batchers, for tests and benchmarks
    return guarded
