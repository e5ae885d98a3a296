"""qdrant_edge filter and query objects built from `EdgeStore`'s checked arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import qdrant_edge as _qe

from tamis.adapters._edge_settings import search_params
from tamis.stores import SearchParams

__all__ = ["edge_filter", "query_request"]


def edge_filter(conditions: list[tuple[str, str, Any]]) -> Any:
    """The ``qdrant_edge.Filter`` of parsed mapping conditions (`tamis.stores.mapping_conditions`)."""
    must = []
    for key, kind, value in conditions:
        if kind == "range":
            must.append(_qe.FieldCondition(key, range=_qe.RangeFloat(**value)))
        elif kind == "any":
            must.append(_qe.FieldCondition(key, match=_qe.MatchAny(value)))
        else:
            # MatchValue(True) reaches the engine as the integer 1, which matches no boolean
            # payload; numpy's bool is extracted as a real bool.
            value = np.bool_(value) if isinstance(value, bool) else value
            must.append(_qe.FieldCondition(key, match=_qe.MatchValue(value)))
    return _qe.Filter(must=must)


def query_request(
    vector: np.ndarray,
    *,
    k: int,
    score_threshold: float | None,
    filter: Any,
    params: SearchParams,
    with_payload: bool,
    offset: int = 0,
) -> Any:
    """The ``qdrant_edge.QueryRequest`` of one nearest-neighbour query."""
    return _qe.QueryRequest(
        limit=k,
        offset=offset or None,
        query=_qe.Query.Nearest(vector.tolist()),
        filter=filter,
        score_threshold=score_threshold,
        params=search_params(params),
        with_payload=with_payload,
        with_vector=False,
    )
