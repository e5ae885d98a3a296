"""Search: the four search methods of `Collection`, the validated request, and the store query under the stages.

Every search method turns its arguments into one `SearchOptions` and one validated `SearchRequest`
(`build_request`), and runs it through the collection's stage pipeline (`tamis.collection._pipeline`)
around the store query (`store_search`), which collapses chunks to one hit per document.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tamis._errors import ConfigError, DimensionMismatchError, TamisError
from tamis.collection._configure import query_defaults
from tamis.collection._hybrid import HybridSide, hybrid_search_fn, resolve_mode
from tamis.collection._options import SearchOptions, options_of
from tamis.collection._pipeline import Staging
from tamis.collection._stages import Hit, SearchFn, SearchRequest
from tamis.stores import (
    ScoredPoint,
    SearchParams,
    VectorStore,
    batch_thresholds,
    check_search_args,
    read_payload,
    validate_filter,
)

logger = logging.getLogger("tamis")

__all__ = ["Searching"]

logger = logging.getLogger("tamis")

#: payload keys a filter names directly; any other key names a metadata field
TOP_LEVEL_KEYS = {"doc_id", "chunk", "n_chunks", "title", "text", "hash"}


class Searching(HybridSide, Staging):
    """The search methods of `Collection`: each runs the collection's stages around the store query."""

    _partial_warned: bool = False

    @property
    def complete(self) -> bool:
        """Whether the last ingest finished: searches of an incomplete one may miss documents (a warning says so)."""
        return (self._require().get("ingest") or {}).get("state") == "complete"

    def _warn_if_partial(self, manifest: Mapping[str, Any]) -> None:
        state = (manifest.get("ingest") or {}).get("state")
        if state != "complete" and not self._partial_warned:
            self._partial_warned = True
            logger.warning(
                "collection %r: its ingest is %s (an index run did not finish), so results may miss documents; "
                "run the same `tamis index` again to complete it", self.name, state,
            )

    def store_filter(self, filter: Any) -> Any:
        """A user filter -> the store's: mapping keys name metadata fields unless top-level."""
        return store_filter(filter)

    def encode_queries(self, queries: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Query vectors, with the model's query prompt if it has one."""
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise ConfigError(f"a query must be a non-empty string, got {q!r}")
        return self.encoder.encode(list(queries), kind="query", batch_size=batch_size)

    def search(self, query: str, k: int = 10, options: SearchOptions | None = None, **kwargs: Any) -> list[Hit]:
        """The ``k`` best documents for ``query``, best first.

        On a calibrated collection (`calibrate`), only documents whose calibrated relevance
        reaches the adapter's threshold come back, each with ``relevance``; the store applies the
        equivalent per-query cosine cutoff itself. An empty list means nothing relevant.

        Args:
            query: the question or keywords.
            k: how many documents at most.
            options: how to search (`SearchOptions`: ``filter``, ``score_threshold``, ``hnsw_ef``,
                ``exact``, and the stages' options, such as ``relevance_filter`` and ``min_relevance``).
            kwargs: the same as keyword arguments, merged into ``options``.

        Raises:
            ConfigError: an option that neither `SearchOptions` nor a stage of the collection takes
                (the message says which stage would, and how to get it).

        Example:
            >>> col.search("mango pie", k=3, filter={"lang": "en"}, min_relevance=0.7)  # doctest: +SKIP
        """
        options = options_of(options, kwargs)
        sparse = self.sparse_queries([query], options.mode)
        return self.search_vectors(self.encode_queries([query]), k, options, sparse_vectors=sparse, query_texts=[query])[0]

    def search_vector(
        self, vector: np.ndarray, k: int = 10, options: SearchOptions | None = None, **kwargs: Any
    ) -> list[Hit]:
        """`search` with a query vector made by the collection's encoder."""
        return self.search_vectors(np.asarray(vector, dtype=np.float32)[None, :], k, options, **kwargs)[0]

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        options: SearchOptions | None = None,
        *,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> list[list[Hit]]:
        """`search` for many queries: encoded in batches, searched in one store call per batch."""
        options = options_of(options, kwargs)
        out: list[list[Hit]] = []
        for start in range(0, len(queries), batch_size):
            part = list(queries[start : start + batch_size])
            vecs = self.encode_queries(part, batch_size=batch_size)
            out.extend(self.search_vectors(
                vecs, k, options, sparse_vectors=self.sparse_queries(part, options.mode), query_texts=part
            ))
        return out

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 10,
        options: SearchOptions | None = None,
        *,
        score_thresholds: Sequence[float | None] | None = None,
        sparse_vectors: Sequence[Any] | None = None,
        query_texts: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[list[Hit]]:
        """Search many query vectors at once; hits are collapsed to one per document.

        The collection's query-time stages (the relevance filter of a calibrated collection) run
        around the store query; see `search` for ``options``. ``score_thresholds`` gives each
        query its own cosine cutoff, instead of one ``score_threshold`` for all. ``sparse_vectors``:
        the BM25 query vectors (``collection.bm25.embed_queries(texts)``) that ``mode="sparse"`` and
        ``"hybrid"`` need; without them the default mode is ``"dense"``. ``query_texts``: the queries'
        texts, for stages that read them (``rerank``).
        """
        manifest = self._require()
        self._warn_if_partial(manifest)
        options = options_of(options, kwargs)
        request = build_request(
            vectors, k, options, dim=manifest["dim"], collection=self.name, score_thresholds=score_thresholds,
        ).replace(
            mode=resolve_mode(options.mode, manifest, self.name, sparse_given=sparse_vectors is not None),
            sparse=sparse_vectors, texts=None if query_texts is None else list(query_texts),
            fusion=options.fusion, rrf_k=options.rrf_k, components=bool(options.components),
        )
        chunked = bool(manifest.get("chunked"))
        request = request.replace(chunked=chunked)
        search = store_search(
            self.store, self.physical, chunked=chunked, layout=manifest.get("payload"), defaults=query_defaults(manifest),
        )
        layout = manifest.get("payload")
        search = hybrid_search_fn(
            self.store, self.physical, search, chunked=chunked,
            collapse=lambda points, k: _collapse(points, k, layout),
        )
        try:
            pipeline = self._stage_pipeline()
        except TamisError as exc:
            if request.options.get("relevance_filter") is False:
                # an unfiltered search needs no stage: a broken one must not block it
                logger.warning("collection %r: searching without its stages, which cannot be built: %s", self.name, exc)
                return search(request)
            raise type(exc)(
                f"{exc} (a search without the filter still works: --no-filter / relevance_filter=False; "
                "`tamis calibrate --remove` removes the calibration)"
            ) from exc
        return pipeline(request, search)


def store_filter(filter: Any) -> Any:
    """A user filter -> the store's: mapping keys name metadata fields unless top-level."""
    if filter is None or not isinstance(filter, Mapping):
        return filter
    out = {}
    for key, cond in filter.items():
        if not isinstance(key, str):
            raise ConfigError(f"filter keys must be strings, got {key!r}")
        full = key if key in TOP_LEVEL_KEYS or key.startswith("metadata.") else f"metadata.{key}"
        if key == "id":
            full = "doc_id"
        out[full] = cond
    validate_filter(out)
    return out


def build_request(
    vectors: np.ndarray,
    k: int,
    options: SearchOptions,
    *,
    dim: int,
    collection: str,
    score_thresholds: Sequence[float | None] | None = None,
) -> SearchRequest:
    """The one validated `SearchRequest` of a search (``score_thresholds``: per query, instead of the option's)."""
    check_search_args(k)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise DimensionMismatchError(
            f"query vectors have shape {vectors.shape}; collection {collection!r} holds {dim}-d vectors"
        )
    if score_thresholds is not None:
        if options.score_threshold is not None:
            raise ConfigError("pass score_threshold= (every query) or score_thresholds= (per query), not both")
        score_thresholds = batch_thresholds(score_thresholds, len(vectors))
    elif options.score_threshold is not None:
        score_thresholds = [float(options.score_threshold)] * len(vectors)
    return SearchRequest(
        vectors=vectors, k=k, filter=store_filter(options.filter), score_thresholds=score_thresholds,
        hnsw_ef=options.hnsw_ef, exact=bool(options.exact), options=options.stage_options,
    )


def store_search(
    store: VectorStore,
    physical: str,
    *,
    chunked: bool,
    layout: Mapping[str, Any] | None = None,
    defaults: SearchParams | None = None,
) -> SearchFn:
    """The innermost step of every search: a `SearchRequest` against the store, hits collapsed per document.

    ``layout``: how the points' payloads read (the manifest's ``payload``); ``defaults``: the collection's
    query-time settings (``hnsw_ef``, quantization ``rescore`` / ``oversampling``).
    """
    base = defaults or SearchParams()

    def search(request: SearchRequest) -> list[list[Hit]]:
        vectors, k, sfilter = request.vectors, request.k, request.filter
        params = SearchParams(  # hnsw_ef None: the store's default
            hnsw_ef=request.hnsw_ef or base.hnsw_ef, exact=request.exact, rescore=base.rescore,
            oversampling=base.oversampling,
        )
        score_thresholds = request.score_thresholds
        fetch = k if not chunked else k * 4 + 10
        if score_thresholds is not None:
            # Qdrant keeps scores strictly above the threshold; one float32 step down makes it >=
            score_thresholds = [None if t is None else _inclusive(t) for t in score_thresholds]
        results = store.search_batch(
            physical, vectors, k=fetch, score_thresholds=score_thresholds, filter=sfilter, params=params
        )
        out = []
        for i, points in enumerate(results):
            hits = _collapse(points, k, layout)
            if chunked and len(points) == fetch and len(hits) < k:
                thr = None if score_thresholds is None else score_thresholds[i]
                more = store.search(physical, vectors[i], k=fetch * 8, score_threshold=thr, filter=sfilter, params=params)
                hits = _collapse(more, k, layout)
            out.append(hits)
        return out

    return search


def _inclusive(threshold: float) -> float:
    """The largest float32 below ``threshold``: an engine keeping ``score > t'`` then keeps ``score >= t``."""
    return float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))


def _collapse(points: Sequence[ScoredPoint], k: int, layout: Mapping[str, Any] | None = None) -> list[Hit]:
    """Scored points -> at most ``k`` hits, one per document (its best chunk), best first."""
    hits: list[Hit] = []
    seen: set[str] = set()
    foreign = 0
    for p in points:
        c = read_payload(p.payload, p.id, layout)
        if c is None:  # a point another tool wrote into this collection
            foreign += 1
            continue
        if c.doc_id in seen:
            continue
        seen.add(c.doc_id)
        hits.append(
            Hit(id=c.doc_id, score=float(p.score), text=c.text, title=c.title, metadata=c.metadata, chunk=c.chunk)
        )
        if len(hits) == k:
            break
    if foreign:
        logger.warning("search skipped %d points not written by tamis (no doc_id in their payload)", foreign)
    return hits
