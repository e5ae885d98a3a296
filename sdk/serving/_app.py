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

from typing import TYPE_CHECKING, Any

import numpy as np

from tamis._errors import ConfigError
from tamis.serving._batching import MicroBatcher
from tamis.serving._guard import ASGIApp, _Guard
from tamis.serving._routes import routes as app_routes
from tamis.serving._server import _require_serve_extra

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection import Collection
    from tamis.encoders import Encoder

__all__ = ["create_app"]

DEFAULT_MAX_REQUEST_BYTES = 2_000_000
DEFAULT_MAX_CLIENT_BATCH_SIZE = 512


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

    routes = app_routes(
        encoder, collection=collection, reranker=reranker, batchers=batchers, rerank_batcher=rerank_batcher,
        max_batch_size=max_batch_size, max_client_batch_size=max_client_batch_size, max_request_bytes=max_request_bytes,
    )
    app = Starlette(routes=routes)
    app.state.batchers = batchers
    app.state.rerank_batcher = rerank_batcher
    guarded = _Guard(app, api_key=api_key, max_request_bytes=max_request_bytes)
    guarded.state = app.state  # batchers, for tests and benchmarks
    return guarded
