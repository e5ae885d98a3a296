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

Sync (`RemoteEncoder.encode`) and async (`RemoteEncoder.aencode`) share everything but the
two small I/O loops: planning batches, building bodies, judging responses and parsing are
I/O-free methods used by both.

Example:
    >>> enc = RemoteEncoder("http://gpu-host:8080", api_key="...")          # doctest: +SKIP
    >>> col = tamis.open_collection("docs", encoder=enc, create=True)       # doctest: +SKIP
    >>> vecs = await enc.aencode(["a question"], kind="query")              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import numpy as np

from tamis._errors import ConfigError, RemoteInferenceError
from tamis.encoders._encoder import TextKind

__all__ = ["RemoteEncoder", "RemoteInfo"]

logger = logging.getLogger("tamis")

Api = Literal["auto", "tei", "openai"]
#: statuses worth another try: rate limited, overloaded, gateway trouble
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: TEI's default ``--payload-limit`` (bytes of request body), used when /info does not say
DEFAULT_PAYLOAD_LIMIT = 2_000_000
_BODY_OVERHEAD = 200  # bytes of JSON around the list of texts


@dataclass(frozen=True, slots=True)
class RemoteInfo:
    """What tamis learned about a server.

    Attributes:
        api: ``"tei"`` or ``"openai"``.
        model_id: the model the server runs.
        revision: the model's revision / sha, if the server says.
        dim: embedding dimension.
        fingerprint: tamis serve's model fingerprint, or a hash of (model id, revision, dim).
        max_client_batch_size: most texts per request (None: no limit known).
        max_batch_tokens: most tokens per request (None: no limit known).
        max_input_length: longest input in tokens (longer is truncated by the server).
        payload_limit: largest request body in bytes.
        query_prompt: the prompt name the server applies to queries (tamis serve with a model
            that has a ``"query"`` prompt), or None.
    """

    api: str
    model_id: str
    revision: str | None
    dim: int
    fingerprint: str
    max_client_batch_size: int | None
    max_batch_tokens: int | None
    max_input_length: int
    payload_limit: int
    query_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: Literal["ok", "retry", "split"]
    delay: float = 0.0


class RemoteEncoder:
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

    def __init__(
        self,
        url: str,
        *,
        api: Api = "auto",
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        payload_limit: int | None = None,
        prefixes: Mapping[str, str] | None = None,
        tokenizer: Any | None = "auto",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"url must start with http:// or https://, got {url!r}")
        if api not in ("auto", "tei", "openai"):
            raise ConfigError(f"api {api!r} is not one of 'auto', 'tei', 'openai'")
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ConfigError(
                f"timeout must be > 0, max_retries and backoff >= 0 (got {timeout}, {max_retries}, {backoff})"
            )
        for label, value in (("batch_size", batch_size), ("max_batch_tokens", max_batch_tokens),
                             ("payload_limit", payload_limit)):
            if value is not None and value < 1:
                raise ConfigError(f"{label} must be positive, got {value}")
        unknown = set(prefixes or {}) - {"query", "document"}
        if unknown:
            raise ConfigError(f"prefixes keys must be 'query' or 'document', got {sorted(unknown)}")
        self.url = url.rstrip("/")
        self.api_requested: Api = api
        self.model_requested = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._batch_size = batch_size
        self._max_batch_tokens = max_batch_tokens
        self._payload_limit = payload_limit
        self.prefixes = dict(prefixes or {})
        self._tokenizer = tokenizer
        self.__api_key = api_key
        self._info: RemoteInfo | None = None
        self._info_lock = threading.Lock()
        #: learned from 413s: requests bigger than this were refused
        self._learned_max: int | None = None
        self._ssl = httpx.create_ssl_context()  # made once: building one per client costs ~10 ms
        self._client = httpx.Client(timeout=timeout, headers=self._headers(), transport=transport, verify=self._ssl)

    # -- identity ------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"User-Agent": "tamis", "Accept": "application/json"}
        if self.__api_key:
            h["Authorization"] = f"Bearer {self.__api_key}"
        return h

    @property
    def info(self) -> RemoteInfo:
        """What the server reported (asked once, on first use)."""
        with self._info_lock:
            if self._info is None:
                self._info = self._discover_sync()
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

    # -- discovery (I/O-free parts) --------------------------------------------------------------
    def _openai_base(self) -> str:
        return self.url if self.url.endswith("/v1") else self.url + "/v1"

    def _info_from_tei(self, data: Mapping[str, Any], dim: int | None) -> RemoteInfo | int:
        """RemoteInfo from a TEI/tamis ``/info`` body; or, when the dimension is unknown, 0 (probe first)."""
        tamis_meta = data.get("tamis") if isinstance(data.get("tamis"), Mapping) else None
        if tamis_meta and dim is None:
            dim = int(tamis_meta["dim"])
        if dim is None:
            return 0
        model_id = str(data.get("model_id") or "unknown")
        revision = data.get("model_sha") or data.get("revision")
        fp = str(tamis_meta["fingerprint"]) if tamis_meta else _remote_fingerprint(model_id, revision, dim)
        prompts = (tamis_meta or {}).get("prompts") or {}
        return RemoteInfo(
            api="tei", model_id=model_id, revision=None if revision is None else str(revision), dim=dim,
            fingerprint=fp,
            max_client_batch_size=_opt_int(data.get("max_client_batch_size")),
            max_batch_tokens=_opt_int(data.get("max_batch_tokens")),
            max_input_length=int(data.get("max_input_length") or 512),
            payload_limit=int(_opt_int(data.get("payload_limit")) or DEFAULT_PAYLOAD_LIMIT),
            query_prompt="query" if "query" in prompts else None,
        )

    def _info_from_openai(self, model_id: str, dim: int) -> RemoteInfo:
        return RemoteInfo(
            api="openai", model_id=model_id, revision=None, dim=dim,
            fingerprint=_remote_fingerprint(model_id, None, dim), max_client_batch_size=None,
            max_batch_tokens=None, max_input_length=512, payload_limit=DEFAULT_PAYLOAD_LIMIT,
        )

    # -- discovery (sync) --------------------------------------------------------------------------
    def _discover_sync(self) -> RemoteInfo:
        if self.api_requested in ("auto", "tei"):
            data = self._get_json_sync(self.url + "/info", optional=self.api_requested == "auto")
            if isinstance(data, Mapping) and "model_id" in data:
                info = self._info_from_tei(data, None)
                if isinstance(info, RemoteInfo):
                    return info
                probe_info = _probe_info("tei", data)
                dim = self._post_sync(probe_info, ["tamis dimension probe"], "document").shape[1]
                info = self._info_from_tei(data, dim)
                assert isinstance(info, RemoteInfo)
                return info
            if self.api_requested == "tei":
                raise RemoteInferenceError(f"{self.url}/info did not describe a TEI server", url=self.url + "/info")
        model = self.model_requested
        if model is None:
            data = self._get_json_sync(self._openai_base() + "/models", optional=False)
            model = _first_model(data, self._openai_base() + "/models")
        probe = _probe_info("openai", {"model_id": model})
        dim = self._post_sync(probe, ["tamis dimension probe"], "document").shape[1]
        return self._info_from_openai(model, dim)

    async def _discover_async(self, client: httpx.AsyncClient) -> RemoteInfo:
        if self.api_requested in ("auto", "tei"):
            data = await self._get_json_async(client, self.url + "/info", optional=self.api_requested == "auto")
            if isinstance(data, Mapping) and "model_id" in data:
                info = self._info_from_tei(data, None)
                if isinstance(info, RemoteInfo):
                    return info
                probe_info = _probe_info("tei", data)
                dim = (await self._post_async(client, probe_info, ["tamis dimension probe"], "document")).shape[1]
                info = self._info_from_tei(data, dim)
                assert isinstance(info, RemoteInfo)
                return info
            if self.api_requested == "tei":
                raise RemoteInferenceError(f"{self.url}/info did not describe a TEI server", url=self.url + "/info")
        model = self.model_requested
        if model is None:
            data = await self._get_json_async(client, self._openai_base() + "/models", optional=False)
            model = _first_model(data, self._openai_base() + "/models")
        probe = _probe_info("openai", {"model_id": model})
        dim = (await self._post_async(client, probe, ["tamis dimension probe"], "document")).shape[1]
        return self._info_from_openai(model, dim)

    def _get_json_sync(self, url: str, *, optional: bool) -> Any:
        attempt = 0
        while True:
            try:
                resp = self._client.get(url)
                if optional and resp.status_code in (404, 405):
                    return None
                outcome = self._judge(resp, None, attempt, 1, url)
            except httpx.TransportError as exc:
                resp = None
                outcome = self._judge(None, exc, attempt, 1, url)
            if outcome.kind == "retry":
                time.sleep(outcome.delay)
                attempt += 1
                continue
            return _json_or_none(resp, optional, url)

    async def _get_json_async(self, client: httpx.AsyncClient, url: str, *, optional: bool) -> Any:
        attempt = 0
        while True:
            try:
                resp = await client.get(url)
                if optional and resp.status_code in (404, 405):
                    return None
                outcome = self._judge(resp, None, attempt, 1, url)
            except httpx.TransportError as exc:
                resp = None
                outcome = self._judge(None, exc, attempt, 1, url)
            if outcome.kind == "retry":
                await asyncio.sleep(outcome.delay)
                attempt += 1
                continue
            return _json_or_none(resp, optional, url)

    # -- encoding (I/O-free parts) ---------------------------------------------------------------
    def _estimate_tokens(self, text: str, limit: int) -> int:
        if self._tokenizer is not None and not isinstance(self._tokenizer, str):
            try:
                n = len(self._tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])
                return min(n, limit)
            except Exception:  # pragma: no cover - fall back to the estimate
                pass
        # ~4 characters per token in English; bytes/3 over-estimates, which only makes batches smaller
        return min(limit, len(text.encode("utf-8", "surrogatepass")) // 3 + 2)

    def _plan(self, texts: Sequence[str], info: RemoteInfo, batch_size: int) -> list[tuple[int, int]]:
        """[start, end) ranges of ``texts``, each a request within every known limit."""
        most = min(x for x in (batch_size, self._batch_size, info.max_client_batch_size, self._learned_max)
                   if x is not None)
        max_tokens = self._max_batch_tokens or info.max_batch_tokens
        payload = self._payload_limit or info.payload_limit
        ranges: list[tuple[int, int]] = []
        start, tokens, size = 0, 0, _BODY_OVERHEAD
        for i, text in enumerate(texts):
            t = self._estimate_tokens(text, info.max_input_length)
            b = len(json.dumps(text)) + 2
            if i > start and (
                i - start >= most or (max_tokens is not None and tokens + t > max_tokens) or size + b > payload
            ):
                ranges.append((start, i))
                start, tokens, size = i, 0, _BODY_OVERHEAD
            tokens += t
            size += b
        if start < len(texts):
            ranges.append((start, len(texts)))
        return ranges

    def _request(self, info: RemoteInfo, texts: list[str], kind: TextKind) -> tuple[str, dict[str, Any]]:
        prefix = self.prefixes.get(kind)
        if prefix:
            texts = [prefix + t for t in texts]
        if info.api == "tei":
            body: dict[str, Any] = {"inputs": texts, "normalize": True, "truncate": True}
            if kind == "query" and info.query_prompt:
                body["prompt_name"] = info.query_prompt
            return self.url + "/embed", body
        return self._openai_base() + "/embeddings", {"input": texts, "model": info.model_id, "encoding_format": "float"}

    def _judge(
        self, resp: httpx.Response | None, exc: BaseException | None, attempt: int, n: int, url: str
    ) -> _Outcome:
        """What to do after one attempt: done, retry after a delay, split the batch, or raise."""
        if resp is not None and resp.status_code < 400:
            return _Outcome("ok")
        if resp is not None and resp.status_code == 413:
            if n > 1:
                return _Outcome("split")
            raise RemoteInferenceError(
                f"{url} refused a single text as too large (413); shorten the text or raise the server's "
                "payload limit", status=413, body=_excerpt(resp), url=url,
            )
        retryable = exc is not None or (resp is not None and resp.status_code in RETRY_STATUSES)
        if retryable and attempt < self.max_retries:
            delay = random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
            if resp is not None:
                delay = max(delay, min(self.max_backoff, _retry_after(resp)))
            what = f"status {resp.status_code}" if resp is not None else type(exc).__name__
            logger.warning("%s failed (%s); retry %d/%d in %.2fs", url, what, attempt + 1, self.max_retries, delay)
            return _Outcome("retry", delay)
        if resp is None:
            assert exc is not None
            raise RemoteInferenceError(
                f"{url} failed after {attempt + 1} attempt(s): {type(exc).__name__}: {exc or 'no detail'}; "
                "check that the server is up and reachable, or raise timeout=/max_retries=",
                url=url,
            ) from exc
        hint = {401: "; pass the server's API key (api_key=, --encoder-api-key)",
                403: "; the API key is not allowed on this server"}.get(resp.status_code, "")
        tries = f" after {attempt + 1} attempt(s)" if retryable else ""
        raise RemoteInferenceError(
            f"{url} answered {resp.status_code}{tries}: {_excerpt(resp)[:200]}{hint}",
            status=resp.status_code, body=_excerpt(resp), url=url,
        )

    def _parse(self, info: RemoteInfo, resp: httpx.Response, n: int, url: str) -> np.ndarray:
        try:
            data = resp.json()
            if info.api == "tei":
                rows = data
            else:
                items = sorted(data["data"], key=lambda d: d.get("index", 0))
                rows = [d["embedding"] for d in items]
            arr = np.asarray(rows, dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteInferenceError(
                f"{url} answered with a body that is not a list of {n} embeddings: {exc}",
                status=resp.status_code, body=_excerpt(resp), url=url,
            ) from exc
        if arr.ndim != 2 or arr.shape[0] != n:
            raise RemoteInferenceError(
                f"{url} returned embeddings of shape {arr.shape} for {n} texts",
                status=resp.status_code, body=_excerpt(resp), url=url,
            )
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        return np.ascontiguousarray(arr / np.where(norms > 0, norms, 1.0), dtype=np.float32)

    def _note_split(self, n: int) -> None:
        half = max(1, n // 2)
        if self._learned_max is None or half < self._learned_max:
            self._learned_max = half
            logger.warning("%s refused %d texts in one request (413); sending at most %d from now on",
                           self.url, n, half)

    # -- encoding (sync) ---------------------------------------------------------------------------
    def _post_sync(self, info: RemoteInfo, texts: list[str], kind: TextKind) -> np.ndarray:
        url, body = self._request(info, texts, kind)
        attempt = 0
        while True:
            try:
                resp = self._client.post(url, json=body)
                outcome = self._judge(resp, None, attempt, len(texts), url)
            except httpx.TransportError as exc:
                outcome = self._judge(None, exc, attempt, len(texts), url)
            if outcome.kind == "ok":
                return self._parse(info, resp, len(texts), url)
            if outcome.kind == "split":
                self._note_split(len(texts))
                mid = len(texts) // 2
                return np.vstack([self._post_sync(info, texts[:mid], kind), self._post_sync(info, texts[mid:], kind)])
            time.sleep(outcome.delay)
            attempt += 1

    def encode(self, texts: Sequence[str], *, kind: TextKind = "document", batch_size: int = 64) -> np.ndarray:
        """Encode ``texts`` on the server: (n, dim) float32 unit rows, in order."""
        texts = list(texts)
        info = self.info
        if not texts:
            return np.zeros((0, info.dim), dtype=np.float32)
        parts = [self._post_sync(info, texts[a:b], kind) for a, b in self._plan(texts, info, batch_size)]
        return _stack(parts, info.dim)

    # -- encoding (async) --------------------------------------------------------------------------
    async def ainfo(self, client: httpx.AsyncClient | None = None) -> RemoteInfo:
        """`info` without blocking the event loop."""
        if self._info is None:
            if client is None:
                async with self._aclient() as own:
                    return await self.ainfo(own)
            info = await self._discover_async(client)
            with self._info_lock:
                if self._info is None:
                    self._info = info
        return self._info

    async def _post_async(
        self, client: httpx.AsyncClient, info: RemoteInfo, texts: list[str], kind: TextKind
    ) -> np.ndarray:
        url, body = self._request(info, texts, kind)
        attempt = 0
        while True:
            try:
                resp = await client.post(url, json=body)
                outcome = self._judge(resp, None, attempt, len(texts), url)
            except httpx.TransportError as exc:
                outcome = self._judge(None, exc, attempt, len(texts), url)
            if outcome.kind == "ok":
                return self._parse(info, resp, len(texts), url)
            if outcome.kind == "split":
                self._note_split(len(texts))
                mid = len(texts) // 2
                return np.vstack([await self._post_async(client, info, texts[:mid], kind),
                                  await self._post_async(client, info, texts[mid:], kind)])
            await asyncio.sleep(outcome.delay)
            attempt += 1

    async def aencode(
        self, texts: Sequence[str], *, kind: TextKind = "document", batch_size: int = 64, concurrency: int = 4
    ) -> np.ndarray:
        """`encode` without blocking the event loop; up to ``concurrency`` requests in flight."""
        texts = list(texts)
        async with self._aclient() as client:
            info = await self.ainfo(client)
            if not texts:
                return np.zeros((0, info.dim), dtype=np.float32)
            sem = asyncio.Semaphore(max(1, concurrency))

            async def one(a: int, b: int) -> np.ndarray:
                async with sem:
                    return await self._post_async(client, info, texts[a:b], kind)

            parts = await asyncio.gather(*(one(a, b) for a, b in self._plan(texts, info, batch_size)))
        return _stack(list(parts), info.dim)

    # -- reranking (TEI /rerank) -------------------------------------------------------------------
    def rerank(self, query: str, texts: Sequence[str], *, raw_scores: bool = False) -> list[float]:
        """Scores of ``texts`` for ``query`` from the server's cross-encoder (TEI ``/rerank``), in input order."""
        url = self.url + "/rerank"
        body = {"query": query, "texts": list(texts), "raw_scores": raw_scores}
        attempt = 0
        while True:
            try:
                resp = self._client.post(url, json=body)
                outcome = self._judge(resp, None, attempt, 1, url)
            except httpx.TransportError as exc:
                outcome = self._judge(None, exc, attempt, 1, url)
            if outcome.kind == "ok":
                return _rerank_scores(resp, len(texts), url)
            time.sleep(outcome.delay)
            attempt += 1

    async def arerank(self, query: str, texts: Sequence[str], *, raw_scores: bool = False) -> list[float]:
        """`rerank` without blocking the event loop."""
        url = self.url + "/rerank"
        body = {"query": query, "texts": list(texts), "raw_scores": raw_scores}
        attempt = 0
        async with self._aclient() as client:
            while True:
                try:
                    resp = await client.post(url, json=body)
                    outcome = self._judge(resp, None, attempt, 1, url)
                except httpx.TransportError as exc:
                    outcome = self._judge(None, exc, attempt, 1, url)
                if outcome.kind == "ok":
                    return _rerank_scores(resp, len(texts), url)
                await asyncio.sleep(outcome.delay)
                attempt += 1


# -- helpers ------------------------------------------------------------------------------------
def _local_tokenizer(model_id: str) -> Any | None:
    """The fast tokenizer of a local copy of ``model_id`` (packaged default or an existing folder), or None."""
    from pathlib import Path

    from tamis._errors import ModelError
    from tamis.encoders import resolve_model

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


def _remote_fingerprint(model_id: str, revision: Any, dim: int) -> str:
    return hashlib.sha256(f"remote:{model_id}@{revision or ''}:{dim}".encode()).hexdigest()[:32]


def _probe_info(api: str, data: Mapping[str, Any]) -> RemoteInfo:
    """A provisional RemoteInfo good enough to send the dimension probe."""
    return RemoteInfo(
        api=api, model_id=str(data.get("model_id") or "unknown"), revision=None, dim=0, fingerprint="",
        max_client_batch_size=None, max_batch_tokens=None, max_input_length=512, payload_limit=DEFAULT_PAYLOAD_LIMIT,
    )


def _first_model(data: Any, url: str) -> str:
    try:
        return str(data["data"][0]["id"])
    except (KeyError, IndexError, TypeError) as exc:
        raise RemoteInferenceError(
            f"{url} lists no model; pass model= naming the served model", url=url, body=json.dumps(data)[:500]
        ) from exc


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _json_or_none(resp: httpx.Response | None, optional: bool, url: str) -> Any:
    assert resp is not None
    try:
        return resp.json()
    except ValueError as exc:
        if optional:
            return None
        raise RemoteInferenceError(
            f"{url} did not answer JSON", status=resp.status_code, body=_excerpt(resp), url=url
        ) from exc


def _retry_after(resp: httpx.Response) -> float:
    value = resp.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:
        return 0.0


def _excerpt(resp: httpx.Response) -> str:
    try:
        return resp.text[:500]
    except Exception:  # pragma: no cover - undecodable body
        return ""


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    out = np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)
    if out.shape[1] != dim:
        raise RemoteInferenceError(f"the server returned {out.shape[1]}-d embeddings; it reported {dim}-d before")
    return out


def _rerank_scores(resp: httpx.Response, n: int, url: str) -> list[float]:
    try:
        scores = [0.0] * n
        for item in resp.json():
            scores[int(item["index"])] = float(item["score"])
        return scores
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise RemoteInferenceError(
            f"{url} answered with a body that is not a rerank result: {exc}",
            status=resp.status_code, body=_excerpt(resp), url=url,
        ) from exc
