"""`SearchOptions`: how to search, one frozen object shared by the four search methods of `Collection`."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tamis._errors import ConfigError
from tamis.stores import MODES, SearchParams, resolve_params

__all__ = ["SearchOptions"]


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """How to search: one object for `Collection.search`, `search_vector`, `search_batch` and `search_vectors`.

    The search methods also take these as keyword arguments (``col.search(q, k=5, exact=True,
    min_relevance=0.7)``), merged into ``options`` when both are given.

    Attributes:
        filter: payload filter; keys name metadata fields (``{"lang": "en"}``), or ``id``,
            ``title``; a list means any of; ``{"gte": 1, "lt": 5}`` a range; or a native filter.
        score_threshold: only hits with cosine >= this (done by the store).
        hnsw_ef, exact: search precision (see `tamis.stores.SearchParams`).
        mode: ``"dense"`` (cosine), ``"sparse"`` (BM25) or ``"hybrid"`` (both, fused in the engine);
            None: ``"hybrid"`` on a hybrid collection, else ``"dense"`` (langchain-qdrant's
            ``RetrievalMode`` names). On a calibrated hybrid collection, ``"hybrid"`` is the calibrated
            formula (its ``relevance`` stage); ``fusion`` chooses plain ``"rrf"`` or ``"dbsf"`` there.
        fusion, rrf_k: the fusion of ``mode="hybrid"`` without a hybrid adapter: ``"rrf"`` (with ``rrf_k``)
            or ``"dbsf"``.
        components: in ``mode="hybrid"``, give each hit both sides' scores (``score``: cosine,
            ``sparse_score``: BM25); ``False`` skips them (NaN / None) for a faster query, one engine
            request per query instead of three.
        stage_options: options of the collection's query-time stages, by name (a value of None is
            left out: the stage's default). The ``relevance`` stage of a calibrated collection takes
            ``relevance_filter`` (``False``: the plain top-``k``, with ``relevance`` still attached)
            and ``min_relevance`` (a relevance threshold for this call instead of the adapter's own).

    Example:
        >>> opts = SearchOptions(exact=True).replace(filter={"lang": "en"}, min_relevance=0.7)
        >>> opts.filter, opts.exact, dict(opts.stage_options)
        ({'lang': 'en'}, True, {'min_relevance': 0.7})
    """

    filter: Any = None
    score_threshold: float | None = None
    hnsw_ef: int | None = None
    exact: bool = False
    mode: str | None = None
    fusion: str | None = None
    rrf_k: int = 60
    components: bool = True
    stage_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.score_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, numbers.Real)):
            raise ConfigError(f"score_threshold must be a number, got {t!r}")
        resolve_params(SearchParams(hnsw_ef=self.hnsw_ef))  # the stores' own check, done early
        if self.mode not in (None, *MODES) or self.fusion not in (None, "rrf", "dbsf"):
            raise ConfigError(
                f"mode must be one of {list(MODES)} and fusion 'rrf' or 'dbsf', got mode={self.mode!r}, "
                f"fusion={self.fusion!r}"
            )
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 1:
            raise ConfigError(f"rrf_k must be a positive integer, got {self.rrf_k!r}")
        if not isinstance(self.stage_options, Mapping) or not all(isinstance(k, str) for k in self.stage_options):
            raise ConfigError(f"stage_options must map option names to values, got {self.stage_options!r}")
        given = {k: v for k, v in self.stage_options.items() if v is not None}
        object.__setattr__(self, "stage_options", MappingProxyType(given))

    def replace(self, **changes: Any) -> SearchOptions:
        """A copy with ``changes``: the fields above by name, any other name a stage option (None removes it)."""
        own = {k: changes.pop(k) for k in list(changes) if k in FIELDS}
        stage = {**self.stage_options, **own.pop("stage_options", {}), **changes}
        return dataclasses.replace(self, **own, stage_options=stage)


FIELDS = frozenset(f.name for f in dataclasses.fields(SearchOptions))


def options_of(options: SearchOptions | None, kwargs: Mapping[str, Any]) -> SearchOptions:
    """``options`` (default: all defaults) with the search method's keyword arguments merged in."""
    if options is not None and not isinstance(options, SearchOptions):
        raise ConfigError(f"options must be a SearchOptions, got {type(options).__name__}")
    base = options or SearchOptions()
    return base.replace(**kwargs) if kwargs else base
