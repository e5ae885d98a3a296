"""Embedding handlers of `tamis serve`: TEI ``POST /`` and ``/embed``, OpenAI ``/v1/embeddings``,
TEI ``/embed_all`` (each token's vector), ``/tokenize`` and ``/decode``."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from tamis.serving._context import Context
from tamis.serving._errors import HttpError, endpoint, invalid
from tamis.serving._inputs import get_bool, get_texts

if TYPE_CHECKING:  # pragma: no cover
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["embed_routes"]


def _direction(value: Any) -> bool:
    """``truncation_direction`` (TEI: ``Left`` / ``Right``, any case): whether to keep the end."""
    if value is None:
        return False
    if not isinstance(value, str) or value.lower() not in ("left", "right"):
        raise invalid(f"truncation_direction must be 'left' or 'right', got {value!r}", "truncation_direction")
    return value.lower() == "left"


def _token_inputs(ctx: Context, value: Any) -> list[str] | None:
    """OpenAI token-id inputs (a list of ints, or of lists of ints) decoded to texts; None for text input."""
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        rows = [value]
    elif all(isinstance(r, list) and r and all(isinstance(t, int) and not isinstance(t, bool) for t in r) for r in value):
        rows = value
    else:
        return None
    if len(rows) > ctx.max_client_batch_size:
        get_texts([""] * len(rows), "input", ctx.max_client_batch_size)  # the 413 it gets
    return ctx.tokens.decode(rows, skip_special_tokens=True)


def embed_routes(ctx: Context) -> list[Any]:
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    @endpoint
    async def embed(request: Request) -> Response:
        data = await ctx.body(request)
        texts = get_texts(data.get("inputs"), "inputs", ctx.max_client_batch_size)
        vecs, _ = await ctx.embed(
            texts, ctx.kind_of(data.get("prompt_name")), truncate=get_bool(data, "truncate", True),
            left=_direction(data.get("truncation_direction")), dimensions=ctx.dimensions(data),
            normalize=ctx.normalize(data),
        )
        return JSONResponse(vecs.tolist())

    @endpoint
    async def embed_all(request: Request) -> Response:
        if not ctx.token_batchers:
            raise HttpError(f"this model's encoder ({type(ctx.encoder).__name__}) gives no per-token vectors; "
                            "serve it with --backend torch or onnx for /embed_all", "Backend")
        data = await ctx.body(request)
        texts = get_texts(data.get("inputs"), "inputs", ctx.max_client_batch_size)
        kind = ctx.kind_of(data.get("prompt_name"))
        prep = await ctx.prepare(texts, kind=kind, truncate=get_bool(data, "truncate", True),
                                 left=_direction(data.get("truncation_direction")), name="inputs")
        rows = await ctx.token_batchers[kind].submit_many(prep.texts)
        return JSONResponse([r.tolist() for r in rows])

    @endpoint
    async def openai_embeddings(request: Request) -> Response:
        data = await ctx.body(request)
        raw = data.get("input")
        texts = _token_inputs(ctx, raw)
        if texts is None:
            texts = get_texts(raw, "input", ctx.max_client_batch_size)
        fmt = data.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise invalid(f"encoding_format {fmt!r} is not one of 'float', 'base64'", "encoding_format")
        vecs, tokens = await ctx.embed(
            texts, ctx.kind_of(data.get("prompt_name")), truncate=get_bool(data, "truncate", True),
            dimensions=ctx.dimensions(data), name="input",
        )
        rows: list[Any] = (
            vecs.tolist() if fmt == "float"
            else [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vecs]
        )
        return JSONResponse({
            "object": "list",
            "data": [{"object": "embedding", "embedding": r, "index": i} for i, r in enumerate(rows)],
            "model": ctx.encoder.name,
            "usage": {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)},
        })

    @endpoint
    async def tokenize(request: Request) -> Response:
        data = await ctx.body(request)
        texts = get_texts(data.get("inputs"), "inputs", ctx.max_client_batch_size)
        ctx.tokens.prepare(texts, kind="document", truncate=True, left=False)  # the same checks as /embed
        prompt = ctx.tokens.prompts.get(ctx.kind_of(data.get("prompt_name")), "")
        special = get_bool(data, "add_special_tokens", True)
        return JSONResponse([ctx.tokens.tokenize(t, add_special_tokens=special, prompt=prompt) for t in texts])

    @endpoint
    async def decode(request: Request) -> Response:
        data = await ctx.body(request)
        ids = data.get("ids")
        if isinstance(ids, list) and ids and all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
            ids = [ids]
        if not (isinstance(ids, list) and ids and all(
                isinstance(r, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in r) for r in ids)):
            raise invalid("'ids' must be a list of token ids or a list of such lists", "ids")
        if len(ids) > ctx.max_client_batch_size:
            get_texts([""] * len(ids), "ids", ctx.max_client_batch_size)
        skip = get_bool(data, "skip_special_tokens", True)
        return JSONResponse(ctx.tokens.decode(ids, skip_special_tokens=skip))

    return [
        Route("/", embed, methods=["POST"]),
        Route("/embed", embed, methods=["POST"]),
        Route("/embed_all", embed_all, methods=["POST"]),
        Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
        Route("/embeddings", openai_embeddings, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/decode", decode, methods=["POST"]),
    ]
