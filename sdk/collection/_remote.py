"""`RemoteCollection`: a collection served by ``tamis serve -c NAME``, searched over HTTP.

An embedded Qdrant Edge collection belongs to the one process that opened it (its write-ahead log
is locked). To share it between processes (the workers of a web app, several scripts), one
process serves it (``tamis serve -c docs``) and the others open it with
``tamis.open_collection("docs", server="http://127.0.0.1:8080")``: the same search API as
`Collection` (``search``, ``search_vector``, ``search_batch``, ``search_vectors``, `SearchOptions`,
relevance filtering with ``min_relevance`` / ``relevance_filter``), over ``/search`` and ``/embed``.
The serving process does the embedding, the store query and the relevance filter. Writes
(``index``, ``calibrate``, ...) stay with the serving process.

Errors come back typed: a refused request (400/413/422) is a `ConfigError` with the server's
reason, a store failure (424) a `StoreError`, an unreachable or overloaded server (429/503 after a
few retries) a `StoreError` naming the URL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tamis._errors import CollectionNotFoundError, ConfigError, StoreError
from tamis.collection._options import SearchOptions, options_of
from tamis.collection._stages import Hit

__all__ = ["RemoteCollection"]

#: stage options the server's /search takes (the relevance stage's)
_STAGE_OPTIONS = ("min_relevance", "relevance_filter")
_RETRIES = 4


class RemoteCollection:
    """The collection ``name`` that ``tamis serve`` at ``server`` serves, searched like a `Collection`.

    Args:
        name: the collection's name (the server must serve it: ``tamis serve -c NAME``).
        server: the server's base URL, ``http://host:port``.
        api_key: the server's API key (``tamis serve --api-key``), if it has one.
        timeout: seconds per HTTP request.

    Raises:
        CollectionNotFoundError: the server serves no collection, or another one.
        StoreError: the server cannot be reached.

    Example:
        >>> col = tamis.open_collection("docs", server="http://127.0.0.1:8080")   # doctest: +SKIP
        >>> col.search("reset my password", k=3, min_relevance=0.5)               # doctest: +SKIP
    """

    def __init__(self, name: str, server: str, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        import httpx

        if not isinstance(server, str) or not server.startswith(("http://", "https://")):
            raise ConfigError(f"server must be an http:// or https:// URL of tamis serve, got {server!r}")
        self.name = name
        self.url = server.rstrip("/")
        self._api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._encoder: Any = None
        try:
            info = self._request("GET", "/info")
        except BaseException:
            self._http.close()
            raise
        served = (info.get("tamis") or {}).get("collection")
        if served != name:
            self._http.close()
            raise CollectionNotFoundError(
                f"tamis serve at {self.url} serves "
                + (f"the collection {served!r}, not {name!r}" if served else "no collection")
                + f"; start it with `tamis serve -c {name}`"
            )
        self.server_info: Mapping[str, Any] = info
        self.dim = int(info["tamis"]["dim"])
        self.fingerprint = str(info["tamis"]["fingerprint"])
        self.calibrated = bool(info["tamis"].get("calibrated"))

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP connections (the served collection is not affected)."""
        self._http.close()
        if self._encoder is not None and hasattr(self._encoder, "close"):
            self._encoder.close()

    def __enter__(self) -> RemoteCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r}, server={self.url!r})"

    @property
    def encoder(self) -> Any:
        """The server's model as a remote encoder (the ``http`` encoder of the registry)."""
        if self._encoder is None:
            from tamis.encoders import load_encoder

            self._encoder = load_encoder(self.url, api_key=self._api_key)
        return self._encoder

    # -- search ---------------------------------------------------------------------------------
    def encode_queries(self, queries: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Query vectors made by the server's model, with its query prompt."""
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise ConfigError(f"a query must be a non-empty string, got {q!r}")
        rows: list[Any] = []
        for start in range(0, len(queries), batch_size):
            rows.extend(self._request("POST", "/embed", {"inputs": list(queries[start:start + batch_size]),
                                                         "prompt_name": "query"}))
        return np.asarray(rows, dtype=np.float32).reshape(len(queries), self.dim)

    def search(self, query: str, k: int = 10, options: SearchOptions | None = None, **kwargs: Any) -> list[Hit]:
        """The ``k`` best documents for ``query`` (see `Collection.search`)."""
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"a query must be a non-empty string, got {query!r}")
        return self._search({"queries": [query]}, k, options_of(options, kwargs), None)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, options: SearchOptions | None = None, *,
                     batch_size: int = 64, **kwargs: Any) -> list[list[Hit]]:
        """`search` for many queries, ``batch_size`` per request."""
        opts = options_of(options, kwargs)
        out: list[list[Hit]] = []
        for start in range(0, len(queries), batch_size):
            out.extend(self._search({"queries": list(queries[start:start + batch_size])}, k, opts, None))
        return out

    def search_vector(self, vector: np.ndarray, k: int = 10, options: SearchOptions | None = None,
                      **kwargs: Any) -> list[Hit]:
        """`search` with a query vector of the server's model."""
        return self.search_vectors(np.asarray(vector, dtype=np.float32)[None, :], k, options, **kwargs)[0]

    def sparse_queries(self, texts: Sequence[str], mode: str | None) -> list[str] | None:
        """What ``sparse_vectors=`` takes for ``mode="sparse"`` / ``"hybrid"``: the queries' texts, whose BM25
        vectors the server makes (None for a dense search)."""
        return None if mode in (None, "dense") else list(texts)

    def search_vectors(self, vectors: np.ndarray, k: int = 10, options: SearchOptions | None = None, *,
                       score_thresholds: Sequence[float | None] | None = None,
                       sparse_vectors: Sequence[str] | None = None, **kwargs: Any) -> list[list[Hit]]:
        """Search many query vectors in one request (see `Collection.search_vectors`); ``sparse_vectors``: the
        queries' texts (`sparse_queries`) for ``mode="sparse"`` / ``"hybrid"``."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[1] != self.dim:
            from tamis._errors import DimensionMismatchError

            raise DimensionMismatchError(
                f"query vectors of shape {vecs.shape} for the collection {self.name!r} of dimension {self.dim}")
        kwargs.pop("query_texts", None)  # the server has them as sparse_texts
        body: dict[str, Any] = {"vectors": vecs.tolist()}
        if sparse_vectors is not None:
            body["sparse_texts"] = [str(t) for t in sparse_vectors]
        return self._search(body, k, options_of(options, kwargs), score_thresholds)

    def _search(self, body: dict[str, Any], k: int, opts: SearchOptions,
                score_thresholds: Sequence[float | None] | None) -> list[list[Hit]]:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        unknown = set(opts.stage_options) - set(_STAGE_OPTIONS)
        if unknown:
            raise ConfigError(f"option(s) {sorted(unknown)} cannot be sent to tamis serve's /search; it takes "
                              f"filter, score_threshold, hnsw_ef, exact, {', '.join(_STAGE_OPTIONS)}")
        if opts.filter is not None and not isinstance(opts.filter, Mapping):
            raise ConfigError("a RemoteCollection takes a filter as a mapping ({'lang': 'en'}), not a native filter")
        body.update(k=k, with_text=True, filter=opts.filter, score_threshold=opts.score_threshold,
                    hnsw_ef=opts.hnsw_ef, exact=opts.exact, mode=opts.mode, fusion=opts.fusion, rrf_k=opts.rrf_k,
                    **dict(opts.stage_options))
        if score_thresholds is not None:
            body["score_thresholds"] = list(score_thresholds)
        reply = self._request("POST", "/search", {key: v for key, v in body.items() if v is not None})
        return [[_hit(h) for h in q["hits"]] for q in reply]

    # -- HTTP -----------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        for attempt in range(_RETRIES + 1):
            try:
                r = self._http.request(method, path, json=body)
            except httpx.HTTPError as exc:
                if attempt == _RETRIES:
                    raise StoreError(f"could not reach tamis serve at {self.url} ({type(exc).__name__}: {exc}); "
                                     f"is `tamis serve -c {self.name}` running?") from exc
                time.sleep(0.1 * 2**attempt)
                continue
            if r.status_code in (429, 503) and attempt < _RETRIES:
                time.sleep(min(float(r.headers.get("retry-after", 0.1 * 2**attempt)), 2.0))
                continue
            if r.status_code < 400:
                return r.json()
            try:
                reason = r.json().get("error", r.text)
            except ValueError:
                reason = r.text
            if r.status_code == 401:
                raise ConfigError(f"tamis serve at {self.url} refused the API key: {reason}")
            if r.status_code in (400, 413, 422):
                raise ConfigError(f"tamis serve refused the request: {reason}")
            raise StoreError(f"tamis serve at {self.url} failed ({r.status_code}): {reason}")
        raise AssertionError("unreachable")  # pragma: no cover


def _hit(d: Mapping[str, Any]) -> Hit:
    return Hit(id=str(d["id"]), score=float(d["score"]), text=d.get("text", ""), title=d.get("title", ""),
               metadata=d.get("metadata") or {}, chunk=int(d.get("chunk", 0)),
               relevance=None if d.get("relevance") is None else float(d["relevance"]))
