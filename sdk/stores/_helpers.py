"""Store-neutral checks and conversions shared by every `VectorStore` implementation.

Names, ids, vectors, mapping filters, JSON payloads and search arguments are checked the same way
whatever the backend, with the same errors (`tamis._errors`), so a store built on `BaseStore` (or
using these helpers directly) behaves like the built-in ones. Cheap to import: numpy only.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tamis._errors import ConfigError, DataError, DimensionMismatchError
from tamis.stores._protocol import Record, ScoredPoint, SearchParams, validate_filter

__all__ = [
    "DEFAULT_HNSW_EF",
    "DEFAULT_HNSW_EF_CONSTRUCT",
    "DEFAULT_HNSW_M",
    "DISTANCES",
    "PAYLOAD_FORMAT",
    "PointContent",
    "batch_thresholds",
    "canonical_id",
    "check_batch_size",
    "check_dim",
    "check_distance",
    "check_hnsw",
    "check_name",
    "check_search_args",
    "json_copy",
    "mapping_conditions",
    "point_payload",
    "read_payload",
    "resolve_params",
    "single_vector",
    "to_record",
    "to_scored",
    "vector_matrix",
]

#: HNSW edges per node for new collections.
DEFAULT_HNSW_M = 16
#: HNSW build-time candidate list size for new collections.
DEFAULT_HNSW_EF_CONSTRUCT = 100
#: HNSW query-time candidate list size when `SearchParams.hnsw_ef` is None.
DEFAULT_HNSW_EF = 128
#: the distances every store supports.
DISTANCES = ("cosine", "dot", "euclid")

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}")


def check_name(name: Any, what: str = "collection") -> str:
    """Return ``name`` if it is a valid collection / alias name, else raise `ConfigError`."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"invalid {what} name {name!r}: use 1-255 letters, digits, '_', '-' or '.', "
            f"starting with a letter, digit or '_' (no '/', no '..'), e.g. 'docs-v2'"
        )
    return name


def canonical_id(point_id: Any) -> str:
    """The canonical UUID string of ``point_id`` (a UUID or a UUID string); `ConfigError` otherwise."""
    if isinstance(point_id, uuid.UUID):
        return str(point_id)
    if isinstance(point_id, str):
        try:
            return str(uuid.UUID(point_id))
        except ValueError:
            pass
    raise ConfigError(
        f"point id {point_id!r} is not a UUID string; tamis point ids are UUIDs, "
        f"e.g. str(uuid.uuid5(namespace, f'{{doc_id}}:{{chunk}}'))"
    )


def vector_matrix(vectors: Any, dim: int, collection: str, what: str = "vector") -> np.ndarray:
    """Stack ``vectors`` into a finite float32 (n, dim) array, or raise a precise error."""
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except ValueError as exc:  # ragged rows
        sizes = sorted({int(np.size(v)) for v in vectors})
        raise DimensionMismatchError(
            f"{what}s of dimensions {sizes} for collection {collection!r}, which holds dimension "
            f"{dim}; every {what} must have {dim} values"
        ) from exc
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ConfigError(f"expected one {what} per row (a 2-D array), got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"{what} of dimension {arr.shape[1]} for collection {collection!r}, which was created "
            f"with dimension {dim}; encode with the collection's model, or create a new collection"
        )
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise DataError(f"{what} #{bad} for collection {collection!r} contains NaN or infinity")
    return arr


def single_vector(vector: Any) -> np.ndarray:
    """``vector`` as a 1-D array; `ConfigError` for a batch (use ``search_batch``)."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise ConfigError(
            f"search takes one query vector, got an array of shape {arr.shape}; use search_batch"
        )
    return arr


def json_copy(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A deep copy of ``value`` through JSON; `ConfigError` if it is not a JSON object."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a mapping (a JSON object), got {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{what} must be JSON-serialisable (str, numbers, bool, None, lists, dicts): {exc}"
        ) from exc


def mapping_conditions(filter: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """Parse a mapping filter into ``(key, kind, value)`` with kind ``"value"``, ``"any"`` or ``"range"``."""
    validate_filter(filter)
    out: list[tuple[str, str, Any]] = []
    for key, cond in filter.items():
        if isinstance(cond, Mapping):
            out.append((key, "range", {op: float(v) for op, v in cond.items()}))
        elif isinstance(cond, (list, tuple, set, frozenset)):
            values = sorted(cond, key=repr) if isinstance(cond, (set, frozenset)) else list(cond)
            if len({type(v) for v in values}) > 1:
                raise ConfigError(
                    f"filter values for {key!r} mix strings and integers ({values!r}); use one type per key"
                )
            out.append((key, "any", values))
        else:
            out.append((key, "value", cond))
    return out


def check_search_args(k: int, offset: int = 0) -> None:
    """`ConfigError` unless ``k`` is a positive and ``offset`` a non-negative integer."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ConfigError(f"offset must be a non-negative integer, got {offset!r}")


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` if it is a positive integer, else `ConfigError`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def batch_thresholds(score_thresholds: Sequence[float | None] | None, n: int) -> list[float | None]:
    """One float-or-None threshold per query of a batch of ``n``; `ConfigError` on a count mismatch."""
    if score_thresholds is None:
        return [None] * n
    thresholds = list(score_thresholds)
    if len(thresholds) != n:
        raise ConfigError(
            f"got {len(thresholds)} score_thresholds for {n} query vectors; give one per query "
            f"(None for no threshold), or score_thresholds=None"
        )
    return [None if t is None else float(t) for t in thresholds]


def resolve_params(params: SearchParams | None) -> SearchParams:
    """``params`` with tamis's default ``hnsw_ef`` filled in; `ConfigError` for anything else."""
    if params is None:
        return SearchParams(hnsw_ef=DEFAULT_HNSW_EF)
    if not isinstance(params, SearchParams):
        raise ConfigError(f"params must be a tamis.stores.SearchParams or None, got {type(params).__name__}")
    ef = params.hnsw_ef
    if ef is None:
        return SearchParams(
            hnsw_ef=DEFAULT_HNSW_EF, exact=params.exact, rescore=params.rescore, oversampling=params.oversampling
        )
    if isinstance(ef, bool) or not isinstance(ef, (int, np.integer)) or ef < 1:
        raise ConfigError(f"hnsw_ef must be a positive integer or None, got {ef!r}")
    return params


def check_distance(distance: Any) -> str:
    """``distance`` if it is one of `DISTANCES`, else `ConfigError`."""
    if distance not in DISTANCES:
        raise ConfigError(f"unknown distance {distance!r}; use one of {list(DISTANCES)}")
    return distance


def check_dim(dim: Any) -> int:
    """``dim`` as an int if it is a positive integer, else `ConfigError`."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ConfigError(f"dim must be a positive integer (the encoder's output size), got {dim!r}")
    return int(dim)


def check_hnsw(m: Any, ef_construct: Any) -> None:
    """`ConfigError` unless the HNSW build settings ``m`` and ``ef_construct`` are integers >= 2."""
    for arg, value in (("hnsw_m", m), ("hnsw_ef_construct", ef_construct)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigError(f"{arg} must be an integer >= 2, got {value!r}")


def _vector(vector: Any) -> np.ndarray | None:
    if isinstance(vector, dict):  # named vectors: tamis uses the unnamed one
        vector = vector.get("")
    return None if vector is None else np.asarray(vector, dtype=np.float32)


def to_record(point: Any, with_vectors: bool) -> Record:
    """A `Record` from an engine's point (anything with ``id``, ``payload`` and ``vector``)."""
    return Record(str(point.id), dict(point.payload or {}), _vector(point.vector) if with_vectors else None)


def to_scored(points: Any) -> list[ScoredPoint]:
    """`ScoredPoint`s from an engine's scored points (``id``, ``score``, ``payload``); ids as strings."""
    return [ScoredPoint(str(p.id), float(p.score), dict(p.payload or {})) for p in points]


# -- the payload of a tamis point -------------------------------------------------------------------
#: the payload layout tamis writes: 2 is read by langchain-qdrant and LlamaIndex with their defaults
#: (``page_content`` + ``metadata`` holding ``doc_id`` / ``chunk`` / ``title``; ``text``); 1 (older
#: tamis) kept the text under ``text`` and only the user's metadata under ``metadata``
PAYLOAD_FORMAT = 2
#: what tamis adds to a point's ``metadata`` (format 2), taken out again when it is read
_OWN_METADATA = ("doc_id", "chunk", "title")


@dataclass(frozen=True, slots=True)
class PointContent:
    """What a tamis point says about its chunk: the document, the chunk's place and text, its metadata."""

    doc_id: str
    text: str
    title: str = ""
    chunk: int = 0
    n_chunks: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
    content_hash: str | None = None


def point_payload(content: PointContent) -> dict[str, Any]:
    """The payload tamis writes for a point (format `PAYLOAD_FORMAT`): the one place that builds it.

    ``page_content`` and ``metadata`` are what langchain-qdrant reads, ``text`` what LlamaIndex
    reads; ``doc_id`` / ``chunk`` / ``n_chunks`` / ``hash`` stay top-level for tamis's own
    (indexed) filters. The metadata keys ``doc_id``, ``chunk`` and ``title`` are tamis's.
    """
    own = {"doc_id": content.doc_id, "chunk": content.chunk, "title": content.title}
    out: dict[str, Any] = {
        "page_content": content.text,
        "metadata": {**content.metadata, **own},
        "text": content.text,
        **own,
        "n_chunks": content.n_chunks,
    }
    if content.content_hash is not None:
        out["hash"] = content.content_hash
    return out


def _dotted(payload: Mapping[str, Any], key: str) -> Any:
    value: Any = payload
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def read_payload(
    payload: Mapping[str, Any], point_id: str | None = None, layout: Mapping[str, Any] | None = None
) -> PointContent | None:
    """The `PointContent` of a payload (formats 1 and 2; the one place that reads one), or None for a
    point tamis did not write.

    ``layout`` reads a collection another tool made (adopted): ``text_key`` (e.g. ``"page_content"``),
    ``metadata_key`` (None: the whole payload but the text), ``id_key`` (a dotted key; None: the
    point id) and ``title_key``.
    """
    if layout is not None and layout.get("format") == "foreign" and not ("doc_id" in payload and "hash" in payload):
        text = _dotted(payload, str(layout.get("text_key") or "page_content"))
        if not isinstance(text, str):
            return None
        id_key, title_key, meta_key = layout.get("id_key"), layout.get("title_key"), layout.get("metadata_key")
        doc_id = _dotted(payload, id_key) if id_key else point_id
        if doc_id is None:
            return None
        meta = _dotted(payload, meta_key) if meta_key else {k: v for k, v in payload.items() if k != layout.get("text_key")}
        title = _dotted(payload, title_key) if title_key else None
        return PointContent(str(doc_id), text, "" if title is None else str(title), metadata=dict(meta or {}))
    if "doc_id" not in payload:
        return None
    meta = dict(payload.get("metadata") or {})
    if "page_content" in payload:  # format 2: tamis's keys inside metadata are not the user's
        for key in _OWN_METADATA:
            meta.pop(key, None)
    text = payload.get("page_content", payload.get("text", ""))
    content_hash = payload.get("hash")
    return PointContent(
        doc_id=str(payload["doc_id"]), text=str(text), title=str(payload.get("title", "")),
        chunk=int(payload.get("chunk", 0)), n_chunks=int(payload.get("n_chunks", 1)), metadata=meta,
        content_hash=None if content_hash is None else str(content_hash),
    )
