"""`tamis serve`: a model, and optionally a collection's /search, over HTTP (the app is `tamis.serving`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tamis._errors import TamisError
from tamis.cli._app import (
    BackendOpt,
    DeviceOpt,
    ModelOpt,
    PathOpt,
    StoreOpt,
    UrlOpt,
    VerboseOpt,
    _fail,
    _open,
    _setup_logging,
    app,
    err,
)


@app.command()
def serve(
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Also serve /search on this collection (its model is served).")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8080,
    model: ModelOpt = None,
    reranker: Annotated[Path | None, typer.Option("--reranker", help="A sentence-transformers CrossEncoder folder: serves /rerank.")] = None,
    serve_api_key: Annotated[
        str | None, typer.Option("--api-key", help="Require 'Authorization: Bearer KEY' (better: set TAMIS_SERVE_API_KEY).",
                                 envvar="TAMIS_SERVE_API_KEY", show_envvar=True)
    ] = None,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="Most texts batched together from concurrent requests (sorted by length, --encode-batch-size per forward pass).")] = 256,
    encode_batch_size: Annotated[int, typer.Option("--encode-batch-size", help="Most texts per forward pass (raise on a GPU).")] = 32,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="How long a request waits for others to share its batch.")] = 2.0,
    max_request_bytes: Annotated[int, typer.Option("--max-request-bytes", help="Larger request bodies get 413.")] = 2_000_000,
    max_client_batch_size: Annotated[int, typer.Option("--max-client-batch-size", help="Most texts per request (more gets 413).")] = 512,
    max_concurrent_requests: Annotated[int, typer.Option("--max-concurrent-requests", help="Most requests in flight (more get 429).")] = 512,
    max_queue_size: Annotated[int, typer.Option("--max-queue-size", help="Most texts waiting for the model (more get 429).")] = 4096,
    max_connections: Annotated[int, typer.Option("--max-connections", help="Most open connections (a request over it gets 503).")] = 2048,
    header_timeout: Annotated[float, typer.Option("--header-timeout", help="Seconds a client has to send its request headers.")] = 10.0,
    body_timeout: Annotated[float, typer.Option("--body-timeout", help="Seconds a client has to send its request body (408 after).")] = 30.0,
    intra_op_spinning: Annotated[bool, typer.Option("--intra-op-spinning/--no-intra-op-spinning", help="Let ONNX Runtime's idle threads busy-wait between model calls (off: the cores serve the requests).")] = False,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: Annotated[str | None, typer.Option("--qdrant-api-key", help="Qdrant API key (better: set QDRANT_API_KEY).", envvar="QDRANT_API_KEY")] = None,
    store: StoreOpt = None,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """Serve a model over HTTP: TEI-compatible / and /embed, /rerank, /tokenize, /info, /health, /metrics,
    OpenAI /v1/embeddings, and /search (what `open_collection(name, server=URL)` queries)."""
    _setup_logging(verbose)
    import os

    from tamis.serving import create_app, run

    col = None
    try:
        if (serve_api_key is not None and not serve_api_key.strip()) or (
                serve_api_key is None and os.environ.get("TAMIS_SERVE_API_KEY") is not None):
            from tamis._errors import ConfigError

            raise ConfigError("the API key is empty (--api-key or TAMIS_SERVE_API_KEY): pass a real key, "
                              "or leave both unset to serve without authentication")
        if collection is not None:
            col = _open(collection, path=path, url=url, api_key=api_key, store=store, model=model, backend=backend, device=device)
            encoder = col.encoder
        else:
            from tamis.encoders import load_encoder

            encoder = load_encoder(model, backend=backend, device=device)  # type: ignore[arg-type]
        cross = None
        if reranker is not None:
            from sentence_transformers import CrossEncoder

            from tamis.encoders import resolve_device

            try:
                cross = CrossEncoder(str(reranker), device=resolve_device(device))
            except (OSError, ValueError) as exc:
                from tamis._errors import ModelError

                raise ModelError(f"could not load the cross-encoder {str(reranker)!r}: {exc}; pass a "
                                 "sentence-transformers CrossEncoder folder") from exc
            cross._tamis_name = str(reranker)
        app = create_app(
            encoder, collection=col, reranker=cross, api_key=serve_api_key, max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms, max_request_bytes=max_request_bytes, max_client_batch_size=max_client_batch_size,
            encode_batch_size=encode_batch_size, max_concurrent_requests=max_concurrent_requests,
            max_queue_size=max_queue_size, body_timeout_s=body_timeout, intra_op_spinning=intra_op_spinning,
        )
        err.print(
            f"serving [bold]{encoder.name}[/] ({getattr(encoder, 'backend', '?')}, {getattr(encoder, 'device', 'cpu')}) "
            f"on http://{host}:{port}" + (f", /search on {collection}" if collection else "")
            + (", /rerank" if cross is not None else "") + (", API key required" if serve_api_key else ""),
            highlight=False,
        )
        run(app, host=host, port=port, log_level="info" if verbose else "warning", max_connections=max_connections,
            header_timeout_s=header_timeout)
    except TamisError as exc:
        _fail(exc)
    finally:
        if col is not None:
            col.close()
