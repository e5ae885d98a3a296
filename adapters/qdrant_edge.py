"""`EdgeStore`: the embedded default store, on Qdrant Edge (``qdrant-edge-py``, the engine in-process).

Layout of a data directory::

    <path>/
        aliases.json                  {"aliases": {alias: collection}}, replaced atomically
        collections/
            <name>/
                tamis.json            {"format", "dim", "distance", "metadata"}, replaced atomically
                shard/                the Edge shard (segments + write-ahead log)
            .tmp-*, .trash-*          a collection being created / deleted (never listed)

Engine behaviour this module relies on (checked against qdrant-edge-py 0.9):

* **Crash safety.** Every ``EdgeShard.update`` is appended to the shard's write-ahead log before
  it returns. A process killed with SIGKILL right after ``update()`` (no ``flush()``) loses
  nothing: ``EdgeShard.load`` replays the WAL, every acknowledged update is there, and an update
  that was in flight is either entirely there or entirely absent (one `upsert` = one update
  operation, so a batch is all-or-nothing). Whether the WAL is fsynced on every update was not
  checked: call ``flush()`` to be safe against an OS crash or power loss, not just a process crash.
* **Indexing.** Points land in a plain (brute-force, exact) appendable segment; nothing is
  indexed in the background. ``EdgeShard.optimize()`` builds HNSW for every segment larger than
  the optimizer's ``indexing_threshold`` (in KB of vectors; engine default 10 000 KB, i.e. about
  6 500 vectors of 384 float32). So a collection of 40k x 384 gets an HNSW index after
  `EdgeStore.optimize` (about 20 s on 2 cores), while a small one stays plain and is searched
  exactly — correct, and fast at that size. ``indexing_threshold_kb`` lowers the threshold.
* **Locking.** A shard's WAL is locked by the process that opened it: opening the same
  collection from a second process (or a second `EdgeStore` on the same path) fails, reported
  here as `StoreError`. Reads and writes on one open shard may come from several threads; this
  store still serialises the writes of a shard (update / flush / optimize) with one lock.
* **Errors.** The engine raises bare ``Exception``; they are re-raised as `StoreError` with the
  collection and path.
* **Booleans in filters.** ``qdrant_edge.MatchValue(True)`` is converted to the integer 1 and
  matches no boolean payload; ``MatchValue(numpy.bool_(True))`` works, and mapping filters are
  converted that way. A native ``qdrant_edge.Filter`` built with a Python bool has the bug.
* **Ids and vectors.** The engine returns point ids as ``uuid.UUID`` objects (normalised to
  ``str`` here) and stores cosine vectors normalised, so ``with_vectors`` returns unit vectors.
  For ``euclid`` the score is the distance (smaller is closer) and ``score_threshold`` is then an
  upper bound on it, as in Qdrant.
* **Thresholds are strict.** The engine keeps ``score > score_threshold`` (``distance <`` for
  euclid): a point scoring exactly the threshold is dropped. This differs from the protocol's
  ``>=`` only at exact float32 equality; the qdrant-client local mode behaves the same.

The helpers at the top (ids, names, vectors, mapping filters, JSON) are shared with
`tamis.adapters.qdrant_client`, which imports them from here (this module is cheap to import).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as _qe

from tamis._errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigError,
    DataError,
    DimensionMismatchError,
    StoreError,
)
from tamis.stores import Record, ScoredPoint, SearchParams, StorePoint, validate_filter

__all__ = ["EdgeStore"]

logger = logging.getLogger(__name__)

DEFAULT_HNSW_M = 16
DEFAULT_HNSW_EF_CONSTRUCT = 100
DEFAULT_HNSW_EF = 128
#: Qdrant's default, in KB: below it a filtered search scans instead of using the payload index.
FULL_SCAN_THRESHOLD_KB = 10_000
DISTANCES = ("cosine", "dot", "euclid")

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}")
_FORMAT = 1
_STALE_TMP_S = 3600.0


# -- helpers shared with the qdrant-client store ------------------------------------------------
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
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ConfigError(f"offset must be a non-negative integer, got {offset!r}")


def batch_thresholds(score_thresholds: Sequence[float | None] | None, n: int) -> list[float | None]:
    if score_thresholds is None:
        return [None] * n
    thresholds = list(score_thresholds)
    if len(thresholds) != n:
        raise ConfigError(
            f"got {len(thresholds)} score_thresholds for {n} query vectors; give one per query "
            f"(None for no threshold), or score_thresholds=None"
        )
    return [None if t is None else float(t) for t in thresholds]


def check_distance(distance: Any) -> str:
    if distance not in DISTANCES:
        raise ConfigError(f"unknown distance {distance!r}; use one of {list(DISTANCES)}")
    return distance


def check_dim(dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ConfigError(f"dim must be a positive integer (the encoder's output size), got {dim!r}")
    return int(dim)


# -- files ----------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


_EDGE_DISTANCE = {"cosine": _qe.Distance.Cosine, "dot": _qe.Distance.Dot, "euclid": _qe.Distance.Euclid}


@dataclass
class _Open:
    """An opened collection: its shard, its dimension, and the lock that serialises its writes."""

    shard: Any
    dim: int
    lock: threading.Lock = field(default_factory=threading.Lock)


class EdgeStore:
    """Collections in a local folder, served by the embedded Qdrant Edge engine (HNSW, no server).

    Args:
        path: the data directory (created if needed); one sub-folder per collection.
        hnsw_m: HNSW edges per node for new collections.
        hnsw_ef_construct: HNSW build-time candidate list size for new collections.
        indexing_threshold_kb: segments with more vector data than this (KB) get an HNSW index on
            `optimize`; ``None`` keeps the engine default (10 000 KB, ~6 500 vectors of 384 floats).

    Example:
        >>> store = EdgeStore("~/.tamis/data")                               # doctest: +SKIP
        >>> store.create_collection("docs", dim=384, metadata={"model": "minilm"})  # doctest: +SKIP
        >>> store.search("docs", query_vector, k=10, score_threshold=0.42)   # doctest: +SKIP
    """

    kind = "edge"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        hnsw_m: int = DEFAULT_HNSW_M,
        hnsw_ef_construct: int = DEFAULT_HNSW_EF_CONSTRUCT,
        indexing_threshold_kb: int | None = None,
    ) -> None:
        for arg, value in (("hnsw_m", hnsw_m), ("hnsw_ef_construct", hnsw_ef_construct)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigError(f"{arg} must be an integer >= 2, got {value!r}")
        if indexing_threshold_kb is not None and (
            isinstance(indexing_threshold_kb, bool)
            or not isinstance(indexing_threshold_kb, int)
            or indexing_threshold_kb < 1
        ):
            raise ConfigError(
                f"indexing_threshold_kb must be a positive integer or None, got {indexing_threshold_kb!r}"
            )
        self.path = Path(path).expanduser().absolute()
        self._collections_dir = self.path / "collections"
        self._aliases_file = self.path / "aliases.json"
        self._hnsw_m = hnsw_m
        self._hnsw_ef_construct = hnsw_ef_construct
        self._indexing_threshold_kb = indexing_threshold_kb
        self._lock = threading.RLock()  # the shard cache, aliases.json, create / delete
        self._open: dict[str, _Open] = {}
        self._closed = False
        try:
            self._collections_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self._collections_dir, prefix=".probe-")
            probe.close()
        except OSError as exc:
            raise StoreError(
                f"cannot use {str(self.path)!r} as the tamis data directory ({exc.strerror or exc}); "
                f"set TAMIS_HOME to a writable folder, or pass path= to a writable folder"
            ) from exc
        self._remove_leftovers()

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.path)!r})"

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------
    def _remove_leftovers(self) -> None:
        """Remove what a crash left behind: trash of deleted collections, stale half-created ones."""
        now = time.time()
        for entry in self._collections_dir.iterdir():
            if entry.name.startswith(".trash-") or (
                entry.name.startswith((".tmp-", ".probe-")) and now - entry.stat().st_mtime > _STALE_TMP_S
            ):
                logger.info("removing leftover %s", entry)
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self!r} is closed; create a new EdgeStore to keep working")

    def _dir(self, name: str) -> Path:
        return self._collections_dir / name

    def _is_collection(self, name: str) -> bool:
        return (self._dir(name) / "tamis.json").is_file()

    def _read_aliases(self) -> dict[str, str]:
        try:
            return dict(_read_json(self._aliases_file)["aliases"])
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"cannot read aliases from {str(self._aliases_file)!r} ({exc}); fix or delete the file "
                f"(aliases will then have to be set again)"
            ) from exc

    def _resolve(self, name: str) -> str:
        """The physical collection behind ``name`` (itself, or an alias's target)."""
        check_name(name)
        self._check_open()
        if name in self._open or self._is_collection(name):
            return name
        target = self._read_aliases().get(name)
        if target is not None and self._is_collection(target):
            return target
        raise CollectionNotFoundError(
            f"no collection or alias named {name!r} in {str(self.path)!r}; "
            f"existing collections: {self.list_collections() or '(none)'}"
        )

    def _info(self, name: str) -> dict[str, Any]:
        try:
            return _read_json(self._dir(name) / "tamis.json")
        except FileNotFoundError:
            raise CollectionNotFoundError(f"no collection named {name!r} in {str(self.path)!r}") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {str(self._dir(name) / 'tamis.json')!r}: {exc}") from exc

    def _edge_config(self, dim: int, distance: str, *, for_load: bool = False) -> Any:
        optimizers = (
            None
            if self._indexing_threshold_kb is None
            else _qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_threshold_kb)
        )
        if for_load:  # keep the stored HNSW settings; the engine insists on the vectors too
            if optimizers is None:
                return None
            return _qe.EdgeConfig(
                vectors=_qe.EdgeVectorParams(size=dim, distance=_EDGE_DISTANCE[distance]),
                optimizers=optimizers,
            )
        return _qe.EdgeConfig(
            vectors=_qe.EdgeVectorParams(size=dim, distance=_EDGE_DISTANCE[distance]),
            hnsw_config=_qe.HnswIndexConfig(
                m=self._hnsw_m,
                ef_construct=self._hnsw_ef_construct,
                full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
            ),
            optimizers=optimizers,
        )

    def _get(self, name: str) -> tuple[str, _Open]:
        """Resolve ``name`` and return its opened shard (opening it on first use)."""
        physical = self._resolve(name)
        opened = self._open.get(physical)
        if opened is not None:
            return physical, opened
        with self._lock:
            self._check_open()
            opened = self._open.get(physical)
            if opened is None:
                info = self._info(physical)
                dim = int(info["dim"])
                shard_dir = self._dir(physical) / "shard"
                try:
                    shard = _qe.EdgeShard.load(
                        str(shard_dir), self._edge_config(dim, info["distance"], for_load=True)
                    )
                except Exception as exc:
                    hint = (
                        "it is open in another process or another EdgeStore on the same path; close that first"
                        if "WouldBlock" in str(exc)
                        else "the folder may be damaged or written by an incompatible qdrant-edge-py"
                    )
                    raise StoreError(
                        f"cannot open collection {physical!r} at {str(shard_dir)!r}: {exc}; {hint}"
                    ) from exc
                opened = self._open[physical] = _Open(shard, dim)
        return physical, opened

    def _engine(self, op: str, name: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            raise StoreError(
                f"Qdrant Edge failed to {op} collection {name!r} in {str(self.path)!r}: {exc}"
            ) from exc

    def _filter(self, filter: Any) -> Any:
        if filter is None or isinstance(filter, _qe.Filter):
            return filter
        if not isinstance(filter, Mapping):
            raise ConfigError(
                f"filter must be None, a mapping such as {{'metadata.lang': 'en'}}, or a qdrant_edge.Filter; "
                f"got {type(filter).__module__}.{type(filter).__qualname__}"
            )
        must = []
        for key, kind, value in mapping_conditions(filter):
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

    @staticmethod
    def _params(params: SearchParams | None) -> Any:
        params = params or SearchParams()
        ef = DEFAULT_HNSW_EF if params.hnsw_ef is None else params.hnsw_ef
        return _qe.SearchParams(hnsw_ef=ef, exact=params.exact)

    @staticmethod
    def _vector(vector: Any) -> np.ndarray | None:
        if vector is None:
            return None
        if isinstance(vector, dict):
            vector = vector.get("")
        return None if vector is None else np.asarray(vector, dtype=np.float32)

    # -- collections -------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        """Names of the physical collections (aliases not included), sorted."""
        self._check_open()
        return sorted(
            p.name
            for p in self._collections_dir.iterdir()
            if not p.name.startswith(".") and self._is_collection(p.name)
        )

    def collection_exists(self, name: str) -> bool:
        """True if ``name`` is a collection, or an alias of one (as in Qdrant)."""
        try:
            self._resolve(name)
        except CollectionNotFoundError:
            return False
        return True

    def create_collection(
        self, name: str, *, dim: int, distance: str = "cosine", metadata: Mapping[str, Any]
    ) -> None:
        """Create an empty collection with its metadata; `CollectionExistsError` if the name is taken.

        The collection is built in a hidden sibling folder and renamed into place, so a failure
        leaves no half-made collection behind.
        """
        check_name(name)
        dim = check_dim(dim)
        check_distance(distance)
        info = {
            "format": _FORMAT,
            "dim": dim,
            "distance": distance,
            "metadata": json_copy(metadata, "metadata"),
        }
        with self._lock:
            self._check_open()
            if self._is_collection(name) or self._dir(name).exists():
                raise CollectionExistsError(
                    f"collection {name!r} exists already in {str(self.path)!r}; open it, pick another "
                    f"name, or delete_collection({name!r}) first"
                )
            if name in self._read_aliases():
                raise CollectionExistsError(
                    f"{name!r} is an alias in {str(self.path)!r}; pick another name or delete_alias({name!r})"
                )
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self._collections_dir))
            try:
                shard = _qe.EdgeShard.create(str(tmp / "shard"), self._edge_config(dim, distance))
                shard.close()
                _write_json_atomic(tmp / "tamis.json", info)
                os.rename(tmp, self._dir(name))
                _fsync_dir(self._collections_dir)
            except BaseException as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                if isinstance(exc, Exception) and not isinstance(exc, (StoreError, ConfigError)):
                    raise StoreError(
                        f"cannot create collection {name!r} in {str(self.path)!r}: {exc}"
                    ) from exc
                raise

    def delete_collection(self, name: str) -> None:
        """Delete a collection, its points and the aliases pointing at it (no error if absent)."""
        check_name(name)
        with self._lock:
            self._check_open()
            aliases = self._read_aliases()
            if name in aliases and not self._is_collection(name):
                raise ConfigError(
                    f"{name!r} is an alias of {aliases[name]!r}, not a collection; use delete_alias({name!r}), "
                    f"or delete_collection({aliases[name]!r}) to delete the collection itself"
                )
            if not self._dir(name).exists():
                return
            opened = self._open.pop(name, None)
            if opened is not None:
                with opened.lock:
                    self._engine("close", name, opened.shard.close)
            trash = self._collections_dir / f".trash-{name}-{uuid.uuid4().hex[:8]}"
            os.rename(self._dir(name), trash)
            _fsync_dir(self._collections_dir)
            remaining = {a: t for a, t in aliases.items() if t != name}
            if remaining != aliases:
                _write_json_atomic(self._aliases_file, {"aliases": remaining})
            shutil.rmtree(trash, ignore_errors=True)

    def get_metadata(self, name: str) -> dict[str, Any]:
        """The metadata dict stored with the collection."""
        return self._info(self._resolve(name))["metadata"]

    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Replace the collection's metadata atomically (temp file, fsync, rename)."""
        new = json_copy(metadata, "metadata")
        with self._lock:
            physical = self._resolve(name)
            info = self._info(physical)
            info["metadata"] = new
            _write_json_atomic(self._dir(physical) / "tamis.json", info)

    def collection_dim(self, name: str) -> int:
        """Vector dimension the collection was created with."""
        return int(self._info(self._resolve(name))["dim"])

    def collection_info(self, name: str) -> dict[str, int]:
        """Engine statistics: ``points``, ``segments`` and ``indexed_vectors`` (HNSW-indexed)."""
        physical, opened = self._get(name)
        info = self._engine("read info of", physical, opened.shard.info)
        return {
            "points": int(info.points_count),
            "segments": int(info.segments_count),
            "indexed_vectors": int(info.indexed_vectors_count),
        }

    # -- aliases -------------------------------------------------------------------------------
    def set_alias(self, alias: str, target: str) -> None:
        """Point ``alias`` at the collection ``target``, replacing any previous target atomically."""
        check_name(alias, "alias")
        check_name(target)
        with self._lock:
            self._check_open()
            if not self._is_collection(target):
                raise CollectionNotFoundError(
                    f"cannot point alias {alias!r} at {target!r}: no collection of that name in "
                    f"{str(self.path)!r} (an alias must point at a collection, not at another alias)"
                )
            if self._is_collection(alias):
                raise ConfigError(
                    f"cannot create alias {alias!r}: a collection of that name exists; pick another alias name"
                )
            aliases = self._read_aliases()
            aliases[alias] = target
            _write_json_atomic(self._aliases_file, {"aliases": aliases})

    def resolve_alias(self, alias: str) -> str | None:
        """The collection ``alias`` points at, or None if it is not an alias."""
        check_name(alias, "alias")
        self._check_open()
        return self._read_aliases().get(alias)

    def delete_alias(self, alias: str) -> None:
        """Remove ``alias`` (no error if it does not exist); its collection is untouched."""
        check_name(alias, "alias")
        with self._lock:
            self._check_open()
            aliases = self._read_aliases()
            if aliases.pop(alias, None) is not None:
                _write_json_atomic(self._aliases_file, {"aliases": aliases})

    # -- points --------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[StorePoint]) -> None:
        """Insert or replace ``points`` as ONE engine update: after a crash all of them are there, or none."""
        physical, opened = self._get(name)
        if not points:
            return
        ids = [canonical_id(p.id) for p in points]
        matrix = vector_matrix([p.vector for p in points], opened.dim, physical)
        rows = matrix.tolist()
        edge_points = [
            _qe.Point(pid, row, json_copy(p.payload, f"payload of point {pid}"))
            for pid, row, p in zip(ids, rows, points, strict=True)
        ]
        op = _qe.UpdateOperation.upsert_points(edge_points)
        with opened.lock:
            self._engine("upsert into", physical, opened.shard.update, op)

    def retrieve(
        self, name: str, ids: Sequence[str], *, with_payload: bool = True, with_vectors: bool = False
    ) -> list[Record]:
        """The points among ``ids`` that exist (any order)."""
        physical, opened = self._get(name)
        if not ids:
            return []
        wanted = [canonical_id(i) for i in ids]
        found = self._engine(
            "retrieve from", physical, opened.shard.retrieve, wanted, bool(with_payload), bool(with_vectors)
        )
        return [
            Record(str(r.id), dict(r.payload or {}), self._vector(r.vector) if with_vectors else None)
            for r in found
        ]

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        """Delete the points with these ids (absent ids are ignored)."""
        physical, opened = self._get(name)
        if not ids:
            return
        op = _qe.UpdateOperation.delete_points([canonical_id(i) for i in ids])
        with opened.lock:
            self._engine("delete points from", physical, opened.shard.update, op)

    def count(self, name: str, filter: Any = None) -> int:
        """Exact number of points (matching ``filter``)."""
        physical, opened = self._get(name)
        request = _qe.CountRequest(exact=True, filter=self._filter(filter))
        return int(self._engine("count", physical, opened.shard.count, request))

    def scroll(
        self,
        name: str,
        *,
        filter: Any = None,
        batch_size: int = 256,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> Iterator[Record]:
        """Every point (matching ``filter``), in id order, fetched ``batch_size`` at a time."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        physical, opened = self._get(name)
        edge_filter = self._filter(filter)

        def pages() -> Iterator[Record]:
            offset = None
            while True:
                request = _qe.ScrollRequest(
                    offset=offset,
                    limit=batch_size,
                    filter=edge_filter,
                    with_payload=bool(with_payload),
                    with_vector=bool(with_vectors),
                )
                records, offset = self._engine("scroll", physical, opened.shard.scroll, request)
                for r in records:
                    yield Record(
                        str(r.id), dict(r.payload or {}), self._vector(r.vector) if with_vectors else None
                    )
                if offset is None:
                    return

        return pages()

    def _request(
        self,
        vector: np.ndarray,
        *,
        k: int,
        score_threshold: float | None,
        filter: Any,
        params: Any,
        with_payload: bool,
        offset: int = 0,
    ) -> Any:
        return _qe.QueryRequest(
            limit=k,
            offset=offset or None,
            query=_qe.Query.Nearest(vector.tolist()),
            filter=filter,
            score_threshold=None if score_threshold is None else float(score_threshold),
            params=params,
            with_payload=bool(with_payload),
            with_vector=False,
        )

    @staticmethod
    def _scored(points: Any) -> list[ScoredPoint]:
        return [ScoredPoint(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def search(
        self,
        name: str,
        vector: np.ndarray,
        *,
        k: int,
        score_threshold: float | None = None,
        filter: Any = None,
        params: SearchParams | None = None,
        with_payload: bool = True,
        offset: int = 0,
    ) -> list[ScoredPoint]:
        """The ``k`` nearest points by descending score; the engine drops scores below ``score_threshold``."""
        check_search_args(k, offset)
        physical, opened = self._get(name)
        query = vector_matrix(single_vector(vector), opened.dim, physical, "query vector")[0]
        request = self._request(
            query,
            k=k,
            score_threshold=score_threshold,
            filter=self._filter(filter),
            params=self._params(params),
            with_payload=with_payload,
            offset=offset,
        )
        return self._scored(self._engine("search", physical, opened.shard.query, request))

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray,
        *,
        k: int,
        score_thresholds: Sequence[float | None] | None = None,
        filter: Any = None,
        params: SearchParams | None = None,
        with_payload: bool = True,
    ) -> list[list[ScoredPoint]]:
        """`search` for many query vectors as one planned engine batch (one threshold per query, or none)."""
        check_search_args(k)
        physical, opened = self._get(name)
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim != 2:
            raise ConfigError(f"search_batch takes a 2-D array of query vectors, got shape {queries.shape}")
        thresholds = batch_thresholds(score_thresholds, len(queries))
        if not len(queries):
            return []
        queries = vector_matrix(queries, opened.dim, physical, "query vector")
        edge_filter, edge_params = self._filter(filter), self._params(params)
        requests = [
            self._request(
                q, k=k, score_threshold=t, filter=edge_filter, params=edge_params, with_payload=with_payload
            )
            for q, t in zip(queries, thresholds, strict=True)
        ]
        results = self._engine("search", physical, opened.shard.query_batch, _qe.QueryBatchRequest(requests))
        return [self._scored(r) for r in results]

    # -- maintenance ---------------------------------------------------------------------------
    def flush(self, name: str) -> None:
        """Write every acknowledged update into the segments on disk (durable against an OS crash)."""
        physical, opened = self._get(name)
        with opened.lock:
            self._engine("flush", physical, opened.shard.flush)

    def optimize(self, name: str) -> None:
        """Run the engine's optimizers now: builds HNSW for segments above the indexing threshold.

        Blocks until done (tens of seconds for ~50k vectors); writes to this collection wait meanwhile.
        """
        physical, opened = self._get(name)
        with opened.lock:
            self._engine("optimize", physical, opened.shard.optimize)

    def close(self) -> None:
        """Flush and close every opened collection. The store cannot be used afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors = []
            for name, opened in self._open.items():
                with opened.lock:
                    try:
                        opened.shard.flush()
                        opened.shard.close()
                    except Exception as exc:  # close the others anyway
                        errors.append(f"{name!r}: {exc}")
            self._open.clear()
        if errors:
            raise StoreError(f"closing {self!r} failed for {', '.join(errors)}")
