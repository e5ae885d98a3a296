"""`RemoteEncoder`: the tamis `Encoder` protocol over an inference server, with httpx.

Speaks two protocols:

* ``"tei"`` — Hugging Face Text Embeddings Inference: ``POST /embed``, ``POST /rerank``,
  ``GET /info``. ``tamis serve`` speaks it too, and adds its model's real fingerprint to ``/info``,
  so a collection indexed locally can be queried through ``tamis serve`` and vice versa.
* ``"openai"`` — OpenAI-compatible ``POST /v1/embeddings`` (vLLM, Infinity, ...).

What it does for you:

* reads the server's limits from ``/info`` (``max_client_batch_size``, ``max_batch_tokens``,
  ``max_input_length``, a payload limit where offered; TEI's default payload limit of 2 MB
  otherwise) and splits every `encode` call into requests that fit;
* retries 429, 502, 503, 504 and dropped or timed-out connections with exponential backoff and
  full jitter (honouring ``Retry-After``); halves a batch answered with 413 (and remembers the
  smaller size);
* raises `tamis.RemoteInferenceError` (status, body excerpt, url) when it gives up;
* sends the API key as ``Authorization: Bearer ...``; the key is never logged, never in ``repr``
  and never in an error message.

Sync (`RemoteEncoder.encode`) and async (`RemoteEncoder.aencode`) run the same procedures, from
the I/O-free core in `tamis.adapters._remote_core`; this module only drives them, with
``httpx.Client`` or ``httpx.AsyncClient``. It is also the ``http`` encoder of the ``tamis.encoders``
registry: ``tamis.load_encoder("http://host:8080", api_key=...)``.

Example:
    >>> enc = RemoteEncoder("http://gpu-host:8080", api_key="...")          # doctest: +SKIP
    >>> col = tamis.open_collection("docs", encoder=enc, create=True)       # doctest: +SKIP
    >>> vecs = await enc.aencode(["a question"], kind="query")              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np

from tamis._errors import ConfigError, ModelError
from tamis.adapters._remote_core import RemoteCore, Sleep, Steps, past_deadline
from tamis.adapters._remote_wire import RemoteInfo, stack
from tamis.encoders import TextKind, resolve_model

__all__ = ["RemoteEncoder", "RemoteInfo"]

logger = logging.getLogger("tamis")

T = TypeVar("T")


class RemoteEncoder(RemoteCore):
    """An encoder that calls a TEI / OpenAI-compatible / tamis serve server.

    Args:
        url: the server's base URL (``http://host:8080``; for OpenAI-compatible servers the
            base, with or without a trailing ``/v1``).
        api: ``"tei"``, ``"openai"``, or ``"auto"`` (``/info`` answers: TEI, else OpenAI).
        model: the model name to send to OpenAI-compatible servers (default: the first one
            ``/v1/models`` lists).
        api_key: sent as ``Authorization: Bearer <key>``.
        timeout: seconds for connecting and for each read; a request that takes longer fails
            (and is retried).
        deadline: seconds one request may take in all, from sending it to the last byte of the
            answer (default 3 x ``timeout``): a server that trickles its answer fails (and is retried)
            instead of blocking forever.
        max_retries: further attempts after a retryable failure (429/502/503/504, a dropped
            connection, a timeout).
        backoff: the first retry waits up to this many seconds (full jitter); each further
            one doubles it, capped by ``max_backoff``.
        batch_size: most texts per request (also capped by the server's limit).
        max_batch_tokens, payload_limit: override what the server reports.
        prefixes: text prepended client-side per kind, e.g. ``{"query": "query: "}`` for E5 models
            behind a server that does not apply prompts itself.
        tokenizer: a Hugging Face tokenizer of the served model, for token-aware chunking and
            exact token counts; ``"auto"``: the tokenizer of a local copy of the served model when
            there is one (the packaged MiniLM, a model folder of the same path), else None (both
            are then estimated from characters and words).
        transport: an httpx transport for the sync client (tests).

    Example:
        >>> enc = RemoteEncoder("http://127.0.0.1:8080")         # doctest: +SKIP
        >>> enc.encode(["hello"]).shape                           # doctest: +SKIP
        (1, 384)
    """

    backend = "remote"

    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None, **options: Any) -> None:
        # the options (api=, model=, api_key=, timeout= ...: see above) are checked and kept by the core
        super().__init__(url, **options)
        self._ssl = httpx.create_ssl_context()  # made once: building one per client costs ~10 ms
        self._client = httpx.Client(
            timeout=self.timeout, headers=self._headers(), transport=transport, verify=self._ssl
        )

    @classmethod
    def from_spec(cls, spec: str | None, *, device: str = "auto", **options: Any) -> RemoteEncoder:
        """The ``http`` encoder factory (see `tamis.encoders`): ``spec`` is the server's URL;
        ``device`` does not apply; ``options`` go to `RemoteEncoder`."""
        if not spec:
            raise ConfigError("the http encoder needs the server's URL, as in load_encoder('http://host:8080')")
        return cls(spec, **options)

    # -- identity ------------------------------------------------------------------------------
    @property
    def info(self) -> RemoteInfo:
        """What the server reported (asked once, on first use)."""
        with self._info_lock:
            if self._info is None:
                self._info = self._run(self._discover())
            return self._info

    @property
    def name(self) -> str:
        return self.info.model_id

    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def fingerprint(self) -> str:
        return self.info.fingerprint

    @property
    def max_seq_length(self) -> int:
        return self.info.max_input_length

    @property
    def tokenizer(self) -> Any | None:
        if isinstance(self._tokenizer, str) and self._tokenizer == "auto":
            self._tokenizer = _local_tokenizer(self.name)
        return self._tokenizer

    @property
    def api(self) -> str:
        return self.info.api

    def __repr__(self) -> str:
        known = f", model={self._info.model_id!r}" if self._info is not None else ""
        return f"RemoteEncoder({self.url!r}, api={(self._info.api if self._info else self.api_requested)!r}{known})"

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection pool of the sync methods (async calls each use their own)."""
        self._client.close()

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __enter__(self) -> RemoteEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _aclient(self) -> httpx.AsyncClient:
        """A connection pool for one async call (pools cannot outlive the event loop they were used on)."""
        return httpx.AsyncClient(timeout=self.timeout, headers=self._headers(), verify=self._ssl)

    # -- the two drivers: the only I/O -------------------------------------------------------------
    def _run(self, steps: Steps[T]) -> T:
        """Run a procedure of the core with the sync client."""
        reply: httpx.Response | httpx.TransportError | None = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                return done.value
            reply = None
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                continue
            try:
                reply = self._request_within_deadline(step.method, step.url, step.json)
            except httpx.TransportError as exc:
                reply = exc

    def _request_within_deadline(self, method: str, url: str, body: Any) -> httpx.Response:
        """One request with the sync client, its answer read in full within `deadline` seconds."""
        limit = time.monotonic() + self.deadline
        with self._client.stream(method, url, json=body) as resp:
            raw = bytearray()
            for chunk in resp.iter_raw():
                raw += chunk
                if time.monotonic() > limit:
                    raise past_deadline(self.deadline, resp.request)
            return httpx.Response(resp.status_code, headers=resp.headers, content=bytes(raw), request=resp.request)

    async def _arun(self, steps: Steps[T], client: httpx.AsyncClient) -> T:
        """Run a procedure of the core with ``client``, without blocking the event loop."""
        reply: httpx.Response | httpx.TransportError | None = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                return done.value
            reply = None
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                continue
            try:
                reply = await asyncio.wait_for(client.request(step.method, step.url, json=step.json), self.deadline)
            except asyncio.TimeoutError:
                reply = past_deadline(self.deadline)
            except httpx.TransportError as exc:
                reply = exc

    # -- encoding ----------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], *, kind: TextKind = "document", batch_size: int = 64) -> np.ndarray:
        """Encode ``texts`` on the server: (n, dim) float32 unit rows, in order."""
        texts = list(texts)
        info = self.info
        parts = [self._run(self._embed(info, texts[a:b], kind)) for a, b in self._plan(texts, info, batch_size)]
        return stack(parts, info.dim)  # no texts: no request, a (0, dim) array

    async def ainfo(self, client: httpx.AsyncClient | None = None) -> RemoteInfo:
        """`info` without blocking the event loop."""
        if self._info is None:
            if client is None:
                async with self._aclient() as own:
                    return await self.ainfo(own)
            info = await self._arun(self._discover(), client)
            with self._info_lock:
                if self._info is None:
                    self._info = info
        return self._info

    async def aencode(
        self, texts: Sequence[str], *, kind: TextKind = "document", batch_size: int = 64, concurrency: int = 4
    ) -> np.ndarray:
        """`encode` without blocking the event loop; up to ``concurrency`` requests in flight."""
        texts = list(texts)
        async with self._aclient() as client:
            info = await self.ainfo(client)
            sem = asyncio.Semaphore(max(1, concurrency))

            async def one(a: int, b: int) -> np.ndarray:
                async with sem:
                    return await self._arun(self._embed(info, texts[a:b], kind), client)

            parts = await asyncio.gather(*(one(a, b) for a, b in self._plan(texts, info, batch_size)))
        return stack(list(parts), info.dim)

    # -- reranking (TEI /rerank) -------------------------------------------------------------------
    def rerank(self, query: str, texts: Sequence[str], *, raw_scores: bool = False) -> list[float]:
        """Scores of ``texts`` for ``query`` from the server's cross-encoder (TEI ``/rerank``), in input order."""
        return self._run(self._rerank(query, texts, raw_scores))

    async def arerank(self, query: str, texts: Sequence[str], *, raw_scores: bool = False) -> list[float]:
        """`rerank` without blocking the event loop."""
        async with self._aclient() as client:
            return await self._arun(self._rerank(query, texts, raw_scores), client)


def _local_tokenizer(model_id: str) -> Any | None:
    """The fast tokenizer of a local copy of ``model_id`` (packaged default or an existing folder), or None."""
    try:
        source = resolve_model(model_id)
    except ModelError:
        return None
    if not Path(source).is_dir():
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # a tokenizer is a nicety: chunking falls back to words
        logger.info("no local tokenizer for %s: %s", model_id, exc)
        return None
