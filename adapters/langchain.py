"""LangChain integration: `TamisRetriever` (a ``BaseRetriever``) and `TamisEmbeddings` (``Embeddings``).

``pip install "tamis[langchain]"``.

Async design
------------
LangChain's default ``ainvoke`` runs the sync method in an executor, one thread hop and one model
call per query; 100 concurrent queries then cost 100 forward passes fighting over the same cores.
`TamisRetriever` implements ``_aget_relevant_documents`` natively instead:

* concurrent ``ainvoke`` calls on one retriever are coalesced by a `tamis.serving._batching.MicroBatcher`:
  the queries that arrive while the previous batch runs are encoded in **one** forward pass and
  searched in **one** batched store call (``Collection.search_vectors`` → the store's
  ``search_batch``), run in a worker thread so the event loop never blocks on the CPU-bound model
  or the in-process Qdrant Edge engine;
* with a remote encoder (`tamis.adapters.remote.RemoteEncoder`, e.g. ``tamis serve`` on a GPU
  host) the query is embedded with non-blocking httpx I/O (``aencode``) and only the search is
  batched.

So the event loop stays free, and throughput grows with concurrency as far as the hardware
lets it: on a GPU one forward pass for 64 queries costs about what one query does; on a small CPU
the model is compute-bound and batching gains less (see benchmarks/RESULTS.md). A Qdrant server
(qdrant-client store) is queried the same way, one batched request per batch from the worker
thread, so ``AsyncQdrantClient`` would add a second code path without saving a round trip. The
sync path (``invoke``) calls the same collection methods directly.

Relevance: on a calibrated collection (a Cosine Adapter, see ``Collection.calibrate``) a search
returns only documents whose calibrated relevance reaches the adapter's threshold, so the
retriever may return ``[]`` — the chain should say "I don't know" rather than answer from junk.
``min_relevance=`` overrides the threshold, ``relevance_filter=False`` turns it off, and
``score_threshold=`` adds a raw cosine cutoff. Every Document's metadata carries ``id``, ``score``
(cosine), ``relevance`` (probability, or None on an uncalibrated collection), ``title``, ``chunk``
and the document's own metadata.

Example:
    >>> from tamis.adapters.langchain import TamisRetriever
    >>> retriever = TamisRetriever(collection="docs", k=4)             # doctest: +SKIP
    >>> docs = await retriever.ainvoke("how do I reset my password?")   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever
    from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"tamis.adapters.langchain needs langchain-core ({exc.name} is missing); "
        'install it with `pip install "tamis[langchain]"`'
    ) from exc

from tamis._errors import ConfigError
from tamis.adapters._lc_modes import RetrievalMode, mode_value
from tamis.collection import Collection, Hit, open_collection
from tamis.encoders import Encoder, load_encoder
from tamis.serving import MicroBatcher
from tamis.stores import check_search_args

__all__ = ["RetrievalMode", "TamisEmbeddings", "TamisRetriever"]

#: names of the `open_collection` options a retriever built from a collection name accepts
_OPEN_OPTIONS = ("path", "url", "api_key", "location", "store", "model", "encoder", "encoder_url",
                 "encoder_api_key", "backend", "device", "server")

def _secret(value: SecretStr | str | None) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _remote(url: str, api_key: str | None) -> Encoder:
    from tamis.adapters.remote import RemoteEncoder

    return RemoteEncoder(url, api_key=api_key)


class TamisRetriever(BaseRetriever):
    """A LangChain retriever over a tamis collection.

    Build it from a collection name plus any `tamis.open_collection` options, or from an open
    `tamis.Collection`::

        TamisRetriever(collection="docs", k=4)
        TamisRetriever(collection="docs", url="http://qdrant:6333", encoder_url="http://gpu:8080")
        TamisRetriever(collection=tamis.open_collection("docs"), k=4)

    ``k``, ``filter``, ``score_threshold``, ``min_relevance`` and ``relevance_filter`` may also be
    given per call: ``retriever.invoke("question", k=2, filter={"lang": "en"})``.

    A collection opened by name in the embedded store shares the engine of that folder with the
    other collections of the process (other retrievers, or your own ``open_collection("docs")``);
    `close` releases it without disturbing them.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    collection: Any
    """The collection: its name, or an open `tamis.Collection`."""
    k: int = 4
    """Most documents to return."""
    filter: Any = None
    """Payload filter: ``{"lang": "en"}``, ``{"year": {"gte": 2020}}``, ``{"id": [...]}`` (see `Collection.search`)."""
    score_threshold: float | None = None
    """Only documents with cosine >= this (on top of the calibrated filter)."""
    min_relevance: float | None = None
    """A relevance threshold instead of the collection's calibrated one (calibrated collections only)."""
    relevance_filter: bool = True
    """``False``: ignore the calibrated threshold (relevance is still reported)."""
    mode: RetrievalMode | None = None
    """``DENSE``, ``SPARSE`` or ``HYBRID`` (hybrid collections; None: the collection's default)."""
    path: str | None = None
    """Data directory of the embedded store (default ``$TAMIS_HOME``)."""
    url: str | None = None
    """A Qdrant server or cloud URL."""
    api_key: SecretStr | None = None
    """The Qdrant API key."""
    location: str | None = None
    """``":memory:"`` for qdrant-client's local mode."""
    store: Any = None
    """A store name (``"edge"``, ``"qdrant"``) or object."""
    model: str | None = None
    """Model name or folder (default: the collection's own)."""
    encoder: Any = None
    """A tamis encoder object instead of ``model``."""
    encoder_url: str | None = None
    """Embed queries with a remote server (TEI, OpenAI-compatible, ``tamis serve``)."""
    encoder_api_key: SecretStr | None = None
    """The inference server's API key."""
    server: str | None = None
    """The URL of a ``tamis serve -c NAME`` serving the collection: search it over HTTP (a
    `tamis.collection.RemoteCollection`), so several processes share one embedded collection;
    ``api_key`` is then the server's key."""
    backend: str = "auto"
    """``auto`` | ``torch`` | ``onnx``."""
    device: str = "auto"
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``."""
    max_batch_size: int = Field(default=64, ge=1)
    """Most concurrent ``ainvoke`` queries encoded and searched together."""
    max_wait_ms: float = Field(default=2.0, ge=0)
    """How long a lone ``ainvoke`` waits for others to share its batch."""
    encode_batch_size: int = Field(default=16, ge=1)
    """Queries per forward pass within a batch (sorted by length first: small passes pad less on
    a CPU; raise it on a GPU)."""

    _col: Collection = PrivateAttr()
    _batcher: MicroBatcher[tuple[Any, str], list[Hit]] = PrivateAttr()

    @model_validator(mode="after")
    def _open(self) -> TamisRetriever:
        if isinstance(self.k, bool) or self.k < 1:
            raise ConfigError(f"k must be a positive integer, got {self.k!r}")
        given = [name for name in _OPEN_OPTIONS if getattr(self, name) not in (None, "auto")]
        if isinstance(self.collection, Collection):
            if given:
                raise ConfigError(
                    f"collection is an open Collection; {', '.join(given)} apply only when it is a name"
                )
            self._col = self.collection
        elif isinstance(self.collection, str):
            if self.encoder is not None and (self.model is not None or self.encoder_url is not None):
                raise ConfigError("pass one of encoder=, model= or encoder_url=")
            if self.model is not None and self.encoder_url is not None:
                raise ConfigError("pass model= or encoder_url=, not both")
            encoder = self.encoder
            if self.encoder_url is not None:
                encoder = _remote(self.encoder_url, _secret(self.encoder_api_key))
            # the embedded store shares its engine with every store of the process on the same
            # folder, so several retrievers (and the caller's own collection) work side by side
            self._col = open_collection(
                self.collection,
                path=self.path, url=self.url, api_key=_secret(self.api_key),
                location=self.location, store=self.store, model=self.model, encoder=encoder,
                backend=self.backend, device=self.device, server=self.server,
            )
        else:
            raise ConfigError(
                f"collection must be a collection name or a tamis.Collection, got {type(self.collection).__name__}"
            )
        self._batcher = MicroBatcher(self._search_many, max_batch_size=self.max_batch_size,
                                     max_wait_s=self.max_wait_ms / 1000.0)
        return self

    @property
    def tamis_collection(self) -> Collection:
        """The `tamis.Collection` this retriever searches."""
        return self._col

    def close(self) -> None:
        """Release the collection when this retriever opened it by name (a no-op for one passed in)."""
        if not isinstance(self.collection, Collection):
            self._col.close()

    # -- the shared, I/O-free parts -------------------------------------------------------------
    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(kwargs) - {"k", "filter", "score_threshold", "min_relevance", "relevance_filter", "mode"}
        if unknown:
            raise ConfigError(
                f"unknown search option(s) {sorted(unknown)}; use k, filter, score_threshold, "
                "min_relevance, relevance_filter, mode"
            )
        opts = {
            "k": kwargs.get("k", self.k),
            "filter": kwargs.get("filter", self.filter),
            "score_threshold": kwargs.get("score_threshold", self.score_threshold),
            "min_relevance": kwargs.get("min_relevance", self.min_relevance),
            "relevance_filter": kwargs.get("relevance_filter", self.relevance_filter),
            "mode": mode_value(kwargs.get("mode", self.mode)),
        }
        check_search_args(opts["k"])
        return opts

    @staticmethod
    def _search_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
        """The search options of ``opts`` (None: not set; ``relevance_filter`` is passed only to turn it off)."""
        return {
            "filter": opts["filter"], "score_threshold": opts["score_threshold"],
            "min_relevance": opts["min_relevance"], "relevance_filter": False if not opts["relevance_filter"] else None,
            "mode": opts["mode"],
        }

    @staticmethod
    def _documents(hits: Sequence[Hit]) -> list[Document]:
        return [
            Document(
                id=h.id,
                page_content=h.text,
                metadata={
                    **dict(h.metadata), "id": h.id, "score": float(h.score),
                    "relevance": None if h.relevance is None else float(h.relevance),
                    "title": h.title, "chunk": h.chunk, "sparse_score": h.sparse_score,
                },
            )
            for h in hits
        ]

    # -- sync ---------------------------------------------------------------------------------
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        opts = self._options(kwargs)
        vec, sparse = self._col.encode_queries([query]), self._col.sparse_queries([query], opts["mode"])
        hits = self._col.search_vectors(vec, opts["k"], sparse_vectors=sparse, **self._search_kwargs(opts))[0]
        return self._documents(hits)

    # -- async --------------------------------------------------------------------------------
    def _search_many(self, items: list[tuple[Any, str]]) -> list[list[Hit]]:
        """Worker-thread side of the batcher: encode the text queries at once, then search each
        group of queries sharing the same options in one store call."""
        texts = [q for q, _ in items if isinstance(q, str)]
        encoded = iter(self._col.encode_queries(texts, batch_size=self.encode_batch_size) if texts else [])
        vectors = [next(encoded) if isinstance(q, str) else q[0] for q, _ in items]
        queries = [q if isinstance(q, str) else q[1] for q, _ in items]
        groups: dict[str, list[int]] = {}
        for i, (_, key) in enumerate(items):
            groups.setdefault(key, []).append(i)
        out: list[list[Hit]] = [[] for _ in items]
        for key, idx in groups.items():
            opts = json.loads(key)
            sparse = self._col.sparse_queries([queries[i] for i in idx], opts["mode"])
            hits = self._col.search_vectors(
                np.stack([vectors[i] for i in idx]), opts["k"], sparse_vectors=sparse, **self._search_kwargs(opts)
            )
            for i, h in zip(idx, hits, strict=True):
                out[i] = h
        return out

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        opts = self._options(kwargs)
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"a query must be a non-empty string, got {query!r}")
        try:
            key = json.dumps(opts, sort_keys=True)
        except TypeError as exc:
            raise ConfigError(f"async search options must be JSON-like (got a native filter?): {exc}") from exc
        item: Any = query
        aencode = getattr(self._col.encoder, "aencode", None)
        if aencode is not None:  # a remote encoder: embed with non-blocking I/O
            item = ((await aencode([query], kind="query"))[0], query)
        hits = await self._batcher.submit((item, key))
        return self._documents(hits)


class TamisEmbeddings(BaseModel, Embeddings):
    """LangChain ``Embeddings`` over any tamis encoder: local (torch / ONNX), remote, or fake.

    ``TamisEmbeddings()`` is the packaged all-MiniLM-L6-v2; ``model=`` any sentence-transformers
    name or folder; ``encoder=`` an encoder object; ``encoder_url=`` a TEI / OpenAI-compatible /
    ``tamis serve`` server (default ``$TAMIS_ENCODER_URL``, key ``$TAMIS_ENCODER_API_KEY``).
    Queries are embedded with the model's query prompt, documents with its document prompt.

    Example:
        >>> emb = TamisEmbeddings(encoder=tamis.FakeEncoder(dim=8))      # doctest: +SKIP
        >>> len(emb.embed_query("hello"))                                 # doctest: +SKIP
        8
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: str | None = None
    """Model name or folder (None: all-MiniLM-L6-v2)."""
    encoder: Any = None
    """A tamis encoder object."""
    encoder_url: str | None = Field(default_factory=lambda: os.environ.get("TAMIS_ENCODER_URL") or None)
    """A remote inference server (default ``$TAMIS_ENCODER_URL``)."""
    api_key: SecretStr | None = Field(
        default_factory=lambda: SecretStr(os.environ["TAMIS_ENCODER_API_KEY"])
        if os.environ.get("TAMIS_ENCODER_API_KEY") else None
    )
    """The server's API key (default ``$TAMIS_ENCODER_API_KEY``)."""
    backend: str = "auto"
    """``auto`` | ``torch`` | ``onnx``."""
    device: str = "auto"
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``."""
    batch_size: int = Field(default=64, ge=1)
    """Texts per forward pass / request."""

    _encoder: Encoder | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _check(self) -> TamisEmbeddings:
        chosen = [n for n in ("model", "encoder", "encoder_url") if getattr(self, n) is not None]
        if self.encoder is not None and len(chosen) > 1:
            # an explicit encoder wins over $TAMIS_ENCODER_URL, not over an explicit model=
            if self.model is not None:
                raise ConfigError("pass one of model=, encoder= or encoder_url=")
            self.encoder_url = None
        elif self.model is not None and self.encoder_url is not None:
            raise ConfigError("pass one of model= or encoder_url= (is $TAMIS_ENCODER_URL set?)")
        enc = self.encoder
        if enc is not None and (isinstance(enc, (str, bytes, os.PathLike)) or not callable(getattr(enc, "encode", None))):
            raise ConfigError(f"encoder must be a tamis encoder, got {type(self.encoder).__name__}")
        return self

    @property
    def tamis_encoder(self) -> Encoder:
        """The tamis encoder (loaded on first use)."""
        with self._lock:
            if self._encoder is None:
                if self.encoder is not None:
                    self._encoder = self.encoder
                elif self.encoder_url is not None:
                    self._encoder = _remote(self.encoder_url, _secret(self.api_key))
                else:
                    self._encoder = load_encoder(self.model, backend=self.backend, device=self.device)  # type: ignore[arg-type]
            return self._encoder

    def _encode(self, texts: list[str], kind: str) -> list[list[float]]:
        vecs = self.tamis_encoder.encode(texts, kind=kind, batch_size=self.batch_size)  # type: ignore[arg-type]
        return np.asarray(vecs, dtype=np.float64).tolist()

    async def _aencode(self, texts: list[str], kind: str) -> list[list[float]]:
        enc = await asyncio.to_thread(lambda: self.tamis_encoder) if self._encoder is None else self._encoder
        aencode = getattr(enc, "aencode", None)
        if aencode is not None:
            vecs = await aencode(texts, kind=kind, batch_size=self.batch_size)
        else:  # a local model: one batched forward pass off the event loop
            vecs = await asyncio.to_thread(enc.encode, texts, kind=kind, batch_size=self.batch_size)  # type: ignore[arg-type]
        return np.asarray(vecs, dtype=np.float64).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(list(texts), "document")

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text], "query")[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self._aencode(list(texts), "document")

    async def aembed_query(self, text: str) -> list[float]:
        return (await self._aencode([text], "query"))[0]
