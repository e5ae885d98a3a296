"""The I/O-free core of `tamis.adapters.remote.RemoteEncoder`, shared by its sync and async clients.

As httpx's ``BaseClient`` does for ``Client`` and ``AsyncClient``, `RemoteCore` holds everything
but the I/O: configuration, what the server said (``/info``), what was learned from 413s, and the
procedures themselves — discovery, embedding (split into requests within the server's limits,
halved on 413), reranking, retries with backoff — written once, as generators of `Steps`. A
procedure yields `Send` (send this request; the driver sends back the `httpx.Response`, or the
`httpx.TransportError` it failed with) and `Sleep` (wait this long before the next try), and returns
its result. The sync client drives them with ``httpx.Client`` and ``time.sleep``, the async one with
``httpx.AsyncClient`` and ``asyncio.sleep``: the only code that differs. What the bodies look like
is in `tamis.adapters._remote_wire`.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import numpy as np

from tamis._errors import ConfigError, RemoteInferenceError
from tamis.adapters._remote_wire import (
    RemoteInfo,
    excerpt,
    first_model,
    info_from_openai,
    info_from_tei,
    json_or_none,
    parse_embeddings,
    probe_info,
    rerank_scores,
    retry_after,
)
from tamis.encoders import TextKind

__all__ = ["DEADLINE_TIMEOUTS", "RETRY_STATUSES", "Api", "RemoteCore", "Send", "Sleep", "Steps", "past_deadline"]

logger = logging.getLogger("tamis")

T = TypeVar("T")
Api = Literal["auto", "tei", "openai"]
#: statuses worth another try: rate limited, overloaded, gateway trouble
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_BODY_OVERHEAD = 200  # bytes of JSON around the list of texts
_PROBE = ["tamis dimension probe"]
#: the default deadline of a request, in timeouts
DEADLINE_TIMEOUTS = 3


@dataclass(frozen=True, slots=True)
class Send:
    """A step: send this request; the driver answers with the response or the transport error."""

    method: Literal["GET", "POST"]
    url: str
    json: Any = None


@dataclass(frozen=True, slots=True)
class Sleep:
    """A step: wait ``seconds`` before going on; the driver answers with None."""

    seconds: float


#: a procedure: yields steps, is answered per step, returns its result
Steps = Generator[Send | Sleep, httpx.Response | httpx.TransportError | None, T]


def past_deadline(deadline: float, request: httpx.Request | None = None) -> httpx.ReadTimeout:
    """The transport error of a request whose answer did not come in full within ``deadline`` seconds."""
    return httpx.ReadTimeout(
        f"no complete answer within the deadline of {deadline:g}s (the server is too slow, or trickles; "
        "raise deadline= / --timeout)", request=request,
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: Literal["ok", "retry", "split"]
    delay: float = 0.0


class RemoteCore:
    """Configuration, state and procedures of a remote encoder; no I/O (see the module docstring).

    The arguments are `tamis.adapters.remote.RemoteEncoder`'s, which documents them.
    """

    def __init__(
        self,
        url: str,
        *,
        api: Api = "auto",
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        deadline: float | None = None,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        payload_limit: int | None = None,
        prefixes: Mapping[str, str] | None = None,
        tokenizer: Any | None = "auto",
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"url must start with http:// or https://, got {url!r}")
        if api not in ("auto", "tei", "openai"):
            raise ConfigError(f"api {api!r} is not one of 'auto', 'tei', 'openai'")
        if timeout <= 0 or max_retries < 0 or backoff < 0 or (deadline is not None and deadline <= 0):
            raise ConfigError(
                f"timeout and deadline must be > 0, max_retries and backoff >= 0 (got {timeout}, {deadline}, "
                f"{max_retries}, {backoff})"
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
        #: seconds one request may take in all, however slowly the answer trickles in (then retried)
        self.deadline = float(deadline) if deadline is not None else DEADLINE_TIMEOUTS * timeout
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

    def _headers(self) -> dict[str, str]:
        h = {"User-Agent": "tamis", "Accept": "application/json"}
        if self.__api_key:
            h["Authorization"] = f"Bearer {self.__api_key}"
        return h

    # -- procedures ------------------------------------------------------------------------------
    def _exchange(self, send: Send, n: int = 1, *, optional: bool = False) -> Steps[httpx.Response | None]:
        """``send``, tried again while that is worth it: the successful response; None when the
        server refused ``n > 1`` texts as too large (413: split them), or, with ``optional``, has
        no such endpoint (404, 405)."""
        attempt = 0
        while True:
            reply = yield send
            if isinstance(reply, httpx.Response):
                if optional and reply.status_code in (404, 405):
                    return None
                outcome = self._judge(reply, None, attempt, n, send.url)
            else:
                outcome = self._judge(None, reply, attempt, n, send.url)
            if outcome.kind == "ok":
                assert isinstance(reply, httpx.Response)
                return reply
            if outcome.kind == "split":
                return None
            yield Sleep(outcome.delay)
            attempt += 1

    def _get_json(self, url: str, *, optional: bool) -> Steps[Any]:
        """The JSON body of ``GET url``; with ``optional``, None when there is none."""
        resp = yield from self._exchange(Send("GET", url), optional=optional)
        return None if resp is None else json_or_none(resp, optional, url)

    def _discover(self) -> Steps[RemoteInfo]:
        """Ask the server what it runs: ``/info`` (TEI, tamis serve), else the OpenAI ``/v1/models``;
        send a probe for the dimension when the server does not say."""
        if self.api_requested in ("auto", "tei"):
            data = yield from self._get_json(self.url + "/info", optional=self.api_requested == "auto")
            if isinstance(data, Mapping) and "model_id" in data:
                info = info_from_tei(data, None)
                if info is None:
                    probe = yield from self._embed(probe_info("tei", data), _PROBE, "document")
                    info = info_from_tei(data, probe.shape[1])
                    assert info is not None
                return info
            if self.api_requested == "tei":
                raise RemoteInferenceError(f"{self.url}/info did not describe a TEI server", url=self.url + "/info")
        model = self.model_requested
        if model is None:
            data = yield from self._get_json(self._openai_base() + "/models", optional=False)
            model = first_model(data, self._openai_base() + "/models")
        probe = yield from self._embed(probe_info("openai", {"model_id": model}), _PROBE, "document")
        return info_from_openai(model, probe.shape[1])

    def _embed(self, info: RemoteInfo, texts: list[str], kind: TextKind) -> Steps[np.ndarray]:
        """One request's embeddings; halved (and remembered) when the server says 413."""
        url, body = self._request(info, texts, kind)
        resp = yield from self._exchange(Send("POST", url, body), len(texts))
        if resp is None:
            self._note_split(len(texts))
            mid = len(texts) // 2
            first = yield from self._embed(info, texts[:mid], kind)
            second = yield from self._embed(info, texts[mid:], kind)
            return np.vstack([first, second])
        return parse_embeddings(info, resp, len(texts), url)

    def _rerank(self, query: str, texts: Sequence[str], raw_scores: bool) -> Steps[list[float]]:
        """Scores of ``texts`` for ``query`` from TEI's ``POST /rerank``, in input order."""
        url = self.url + "/rerank"
        body = {"query": query, "texts": list(texts), "raw_scores": raw_scores}
        resp = yield from self._exchange(Send("POST", url, body))
        assert resp is not None  # one request: a 413 raises
        return rerank_scores(resp, len(texts), url)

    # -- requests ----------------------------------------------------------------------------------
    def _openai_base(self) -> str:
        return self.url if self.url.endswith("/v1") else self.url + "/v1"

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
                "payload limit", status=413, body=excerpt(resp), url=url,
            )
        retryable = exc is not None or (resp is not None and resp.status_code in RETRY_STATUSES)
        if retryable and attempt < self.max_retries:
            delay = random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
            if resp is not None:
                delay = max(delay, min(self.max_backoff, retry_after(resp)))
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
            f"{url} answered {resp.status_code}{tries}: {excerpt(resp)[:200]}{hint}",
            status=resp.status_code, body=excerpt(resp), url=url,
        )

    def _note_split(self, n: int) -> None:
        half = max(1, n // 2)
        if self._learned_max is None or half < self._learned_max:
            self._learned_max = half
            logger.warning("%s refused %d texts in one request (413); sending at most %d from now on",
                           self.url, n, half)
