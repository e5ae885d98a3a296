"""Collections: documents -> vectors in a Qdrant store, bound to the model that made them.

`open_collection` is the one entry point; the store behind it is Qdrant Edge in-process by
default, or qdrant-client (``url=`` for a server or the cloud, ``location=":memory:"`` or
``store="qdrant", path=`` for its local mode), or any store registered under ``tamis.stores``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tamis._errors import (
    CollectionNotFoundError,
    ConfigError,
    DataError,
    DataFormatError,
    DimensionMismatchError,
    DocumentTooLargeError,
    DuplicateIdError,
    EmptyTextError,
    ModelError,
    ModelMismatchError,
    StoreError,
)
from tamis._settings import tamis_home
from tamis._version import __version__
from tamis.data._documents import Chunker, Document, DocumentSource, OnInvalid
from tamis.encoders import Encoder, load_encoder
from tamis.stores import ScoredPoint, SearchParams, StorePoint, VectorStore

__all__ = ["Collection", "Hit", "IndexReport", "open_collection", "point_id"]

logger = logging.getLogger("tamis")

#: namespace of tamis point ids: uuid5(namespace, "<document id>\x1f<chunk number>")
POINT_NAMESPACE = uuid.UUID("6f1d3c1e-5a0b-4c8e-9a57-7a6d0e1b2c3d")
MANIFEST_FORMAT = 1
DEFAULT_HNSW_EF = 128
#: a collection ``name`` is the alias ``name`` of its current version, the physical ``<name>__v<N>``
VERSION_SEP = "__v"
_TOP_LEVEL_KEYS = {"doc_id", "chunk", "n_chunks", "title", "text", "hash"}

ProgressCallback = Callable[[int, int], None]


def point_id(doc_id: str, chunk: int = 0) -> str:
    """The deterministic point id of chunk ``chunk`` of document ``doc_id``."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{doc_id}\x1f{chunk}"))


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result.

    Attributes:
        id: the document id.
        score: raw cosine similarity of the query and the best-matching chunk.
        text: that chunk's text (the whole document when it was not chunked).
        title: the document title.
        metadata: the document's metadata.
        chunk: number of the matching chunk (0 for unchunked documents).
        relevance: calibrated probability of relevance, when the collection has a Cosine Adapter.
    """

    id: str
    score: float
    text: str = ""
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    chunk: int = 0
    relevance: float | None = None

    def to_dict(self, *, with_text: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "score": round(float(self.score), 6), "chunk": self.chunk}
        if self.relevance is not None:
            d["relevance"] = round(float(self.relevance), 6)
        if with_text:
            d.update(title=self.title, text=self.text, metadata=dict(self.metadata))
        return d


@dataclass(slots=True)
class IndexReport:
    """What an `Collection.index` run did.

    Attributes:
        documents: valid documents in the input.
        chunks: chunks they make.
        encoded: chunks encoded and written in this run.
        unchanged: documents already in the collection with the same content, left alone.
        stale_chunks_deleted: chunks of documents that shrank, removed.
        skipped: invalid input records skipped, by reason (only with ``on_invalid="skip"``).
        points: points in the collection afterwards.
        seconds: wall time.
    """

    documents: int = 0
    chunks: int = 0
    encoded: int = 0
    unchanged: int = 0
    stale_chunks_deleted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    points: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _version_name(name: str, n: int) -> str:
    """The physical collection of version ``n`` of the collection ``name``: ``<name>__v<n>``."""
    return f"{name}{VERSION_SEP}{n}"


def _parse_version(physical: str) -> tuple[str, int] | None:
    """``("docs", 2)`` for ``"docs__v2"``; None for a name that is not a version."""
    base, sep, n = physical.rpartition(VERSION_SEP)
    if sep and base and n.isascii() and n.isdigit() and not n.startswith("0"):
        return base, int(n)
    return None


def _versions(store: VectorStore, name: str) -> dict[int, str]:
    """{version number: physical collection} of every ``<name>__v<N>`` in ``store``."""
    parsed = ((c, _parse_version(c)) for c in store.list_collections())
    return {v[1]: c for c, v in parsed if v is not None and v[0] == name}


def _manifest_of(store: VectorStore, physical: str) -> Mapping[str, Any] | None:
    """The tamis manifest stored with ``physical``, or None when tamis did not create it."""
    meta = store.get_metadata(physical)
    manifest = meta.get("tamis") if isinstance(meta, Mapping) else None
    return manifest if isinstance(manifest, Mapping) and "model" in manifest else None


def _find(store: VectorStore, name: str) -> tuple[str | None, bool]:
    """(physical collection serving ``name``, whether it is an orphan to adopt), or (None, False).

    ``name`` is an alias (what tamis creates), or a collection of that name (created by an older
    tamis or another tool). Failing both, the newest tamis version ``<name>__v<N>`` is an orphan:
    a crash came between creating it and pointing the alias at it.
    """
    target = store.resolve_alias(name)
    if target is not None and store.collection_exists(target):
        return target, False
    if store.collection_exists(name):
        return name, False
    for _, physical in sorted(_versions(store, name).items(), reverse=True):
        if _manifest_of(store, physical) is not None:
            return physical, True
    return None, False


def _link(store: VectorStore, alias: str, target: str) -> None:
    """Point ``alias`` at ``target``; done already (by a concurrent process) counts as success."""
    try:
        store.set_alias(alias, target)
    except Exception:
        if store.resolve_alias(alias) != target:
            raise


def _adopt(store: VectorStore, name: str, physical: str) -> None:
    """Point the alias ``name`` at the orphan version ``physical`` (left by a crash)."""
    logger.warning("collection %r: pointing its alias at %r, which a crash left without it", name, physical)
    try:
        _link(store, name, physical)
    except (StoreError, ConfigError) as exc:  # e.g. a read-only API key: serve it all the same
        logger.warning("cannot point the alias %r at %r (%s); using the latter directly", name, physical, exc)


def _list_names(store: VectorStore) -> list[tuple[str, str]]:
    """(name, physical collection serving it) for every collection that opens by name, sorted.

    A version ``<name>__v<N>`` is listed under ``name`` (the one the alias points at); versions
    kept by ``reindex(keep_old=True)`` and half-built ones are not listed. Collections tamis
    did not create are listed under their own names.
    """
    physicals = store.list_collections()
    taken = set(physicals)
    parsed = {c: _parse_version(c) for c in physicals}
    out: dict[str, str] = {}
    for base in {v[0] for v in parsed.values() if v is not None} - taken:
        physical, _ = _find(store, base)
        if physical is not None:
            out[base] = physical
    for c in physicals:
        v = parsed[c]
        if v is None or (v[0] not in out and v[0] not in taken):
            out.setdefault(c, c)
    return sorted(out.items())


def _open_store(
    store: VectorStore | str | None,
    *,
    path: str | os.PathLike[str] | None,
    url: str | None,
    api_key: str | None,
    location: str | None,
) -> tuple[VectorStore, bool]:
    """(store, owned): build the store from the arguments, or take the one given."""
    from tamis import registry

    if store is not None and not isinstance(store, str):
        if any(v is not None for v in (path, url, api_key, location)):
            raise ConfigError("pass either store=<a store object> or path/url/api_key/location, not both")
        return store, False
    if url is not None and location is not None:
        raise ConfigError(f"pass url= or location=, not both (got url={url!r}, location={location!r})")
    kind = store or ("qdrant" if (url is not None or location is not None or api_key is not None) else "edge")
    cls = registry.load(registry.STORES, kind)
    if kind == "edge":
        if url is not None or location is not None or api_key is not None:
            raise ConfigError("the edge store is embedded: url=, location= and api_key= are for store='qdrant'")
        return cls(tamis_home(path)), True
    if kind == "qdrant":
        if path is not None and (url is not None or location is not None):
            raise ConfigError("store='qdrant' takes one of url=, location= or path=")
        return cls(location=location, url=url, api_key=api_key, path=None if path is None else os.fspath(path)), True
    return cls(**{k: v for k, v in dict(path=path, url=url, api_key=api_key, location=location).items() if v is not None}), True


def open_collection(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    location: str | None = None,
    store: VectorStore | str | None = None,
    model: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    encoder_url: str | None = None,
    encoder_api_key: str | None = None,
    backend: str = "auto",
    device: str = "auto",
    create: bool = False,
) -> Collection:
    """Open (or, with ``create=True``, prepare) the collection ``name``.

    Args:
        name: the collection's name (or an alias of it).
        path: data directory of the embedded Edge store (default ``$TAMIS_HOME`` or ``~/.tamis``);
            with ``store="qdrant"``, the folder of qdrant-client's local mode.
        url, api_key: a Qdrant server or cloud cluster (uses qdrant-client).
        location: ``":memory:"`` for qdrant-client's in-memory local mode.
        store: a store object, or the name of a registered store (``"edge"``, ``"qdrant"``).
        model: model name or folder; default: the collection's own model, or all-MiniLM-L6-v2 for a new one.
        encoder: an encoder object instead of ``model``.
        encoder_url, encoder_api_key: embed with an inference server instead (TEI, OpenAI-compatible,
            ``tamis serve``; see `tamis.adapters.remote.RemoteEncoder`).
        backend, device: how to run the model (see `tamis.load_encoder`).
        create: make the collection on the first `Collection.index` if it does not exist: the
            Qdrant collection ``<name>__v1`` behind the alias ``name`` (see `Collection.reindex`).

    Raises:
        CollectionNotFoundError: no such collection and ``create`` is false.
        ModelMismatchError: ``model``/``encoder`` is not the model the collection was indexed with.

    Example:
        >>> col = open_collection("docs", create=True)         # doctest: +SKIP
        >>> col.index(load_beir("scifact"))                    # doctest: +SKIP
        >>> col.search("do statins reduce mortality?", k=3)     # doctest: +SKIP
    """
    if sum(x is not None for x in (model, encoder, encoder_url)) > 1:
        raise ConfigError("pass model= or encoder= or encoder_url=, not several")
    if encoder_api_key is not None and encoder_url is None:
        raise ConfigError("encoder_api_key= goes with encoder_url=")
    if encoder_url is not None:
        encoder = load_encoder(encoder_url, api_key=encoder_api_key)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"collection name must be a non-empty string, got {name!r}")
    st, owned = _open_store(store, path=path, url=url, api_key=api_key, location=location)
    try:
        physical, orphan = _find(st, name)
        manifest = None
        if physical is not None:
            manifest = _manifest_of(st, physical)
            if manifest is None:
                raise StoreError(
                    f"collection {name!r} exists but was not created by tamis (no tamis manifest); "
                    "pick another name, or index it with tamis into a new collection"
                )
            if orphan:
                _adopt(st, name, physical)
        elif not create:
            names = [n for n, _ in _list_names(st)]
            raise CollectionNotFoundError(
                f"no collection {name!r} in the {st.kind} store (collections: {', '.join(names) or 'none'}); "
                "index one first with `tamis index DATA --collection NAME`, or pass create=True"
            )
        col = Collection(
            name, st, physical=physical or _version_name(name, 1),
            manifest=dict(manifest) if manifest else None, owns_store=owned,
            model=model, encoder=encoder, backend=backend, device=device,
        )
        # a new collection is version 1 behind the alias `name` from the start, so that every
        # re-index is a pure alias switch; `index` creates both
        col._link_alias = physical is None
        if manifest is not None and (model is not None or encoder is not None):
            col._check_encoder(col.encoder)
        return col
    except BaseException:
        if owned:
            st.close()
        raise


class Collection:
    """A named collection in a vector store, bound to its model. Build with `open_collection`."""

    def __init__(
        self,
        name: str,
        store: VectorStore,
        *,
        physical: str | None = None,
        manifest: dict[str, Any] | None = None,
        owns_store: bool = False,
        model: str | os.PathLike[str] | None = None,
        encoder: Encoder | None = None,
        backend: str = "auto",
        device: str = "auto",
    ) -> None:
        self.name = name
        self.store = store
        self.physical = physical or name
        self.manifest = manifest
        self._owns_store = owns_store
        self._model_arg = model
        self._encoder = encoder
        self._backend = backend
        self._device = device
        self._encoder_lock = threading.Lock()
        self._stage_cache: tuple[Any, Any] | None = None  # (calibration key, stage built from it)
        self._link_alias = False  # point the alias `name` at `physical` when `index` creates it

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Flush and release the store (when this collection opened it)."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        model = self.manifest["model"]["name"] if self.manifest else None
        return f"Collection({self.name!r}, store={self.store.kind!r}, model={model!r})"

    @property
    def exists(self) -> bool:
        return self.manifest is not None

    # -- the model ---------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The collection's encoder, loaded on first use."""
        with self._encoder_lock:
            if self._encoder is None:
                model = self._model_arg
                if model is None and self.manifest is not None:
                    model = self.manifest["model"].get("source") or self.manifest["model"]["name"]
                try:
                    self._encoder = load_encoder(model, backend=self._backend, device=self._device)  # type: ignore[arg-type]
                except ModelError as exc:
                    if self._model_arg is None and self.manifest is not None:
                        raise ModelError(
                            f"collection {self.name!r} was indexed with model {model!r}, which cannot be "
                            f"loaded here ({exc}); pass model= pointing at a copy of it"
                        ) from exc
                    raise
                if self.manifest is not None:
                    self._check_encoder(self._encoder)
            return self._encoder

    def _check_encoder(self, enc: Encoder) -> None:
        assert self.manifest is not None
        want = self.manifest["model"]
        if enc.fingerprint != want["fingerprint"]:
            raise ModelMismatchError(
                f"collection {self.name!r} was indexed with model {want['name']!r} (fingerprint "
                f"{want['fingerprint'][:12]}); the model given is {enc.name!r} (fingerprint "
                f"{enc.fingerprint[:12]}). Open it without model= to use its own model, or index into "
                "a new collection with the new model."
            )

    # -- indexing ----------------------------------------------------------------------------
    def _validate(
        self, documents: Iterable[Document], *, on_invalid: OnInvalid, max_document_bytes: int
    ) -> tuple[list[Document], Counter[str]]:
        skipped: Counter[str] = Counter()
        seen: set[str] = set()
        docs: list[Document] = []
        for i, doc in enumerate(documents):
            try:
                if not isinstance(doc, Document):
                    raise DataFormatError(f"item {i} is a {type(doc).__name__}, not a tamis.Document")
                if not isinstance(doc.id, str) or not doc.id.strip():
                    raise DataFormatError(f"item {i} has an empty or non-string id: {doc.id!r}")
                if not isinstance(doc.text, str) or not isinstance(doc.title, str):
                    raise DataFormatError("text and title must be strings", doc_id=doc.id)
                if doc.id in seen:
                    raise DuplicateIdError(
                        "this id appears twice in the input; ids must be unique (a re-run of the same "
                        "input is fine: it updates in place)", doc_id=doc.id,
                    )
                if not doc.embed_text:
                    raise EmptyTextError("text and title are empty or whitespace", doc_id=doc.id)
                size = len(doc.text.encode("utf-8", "surrogatepass"))
                if size > max_document_bytes:
                    raise DocumentTooLargeError(
                        f"{size:,} bytes, over the limit of {max_document_bytes:,}; split it, or raise "
                        "max_document_bytes (--max-document-bytes)", doc_id=doc.id,
                    )
                if not isinstance(doc.metadata, Mapping):
                    raise DataFormatError(f"metadata must be a mapping, got {type(doc.metadata).__name__}", doc_id=doc.id)
                try:
                    import json

                    json.dumps(dict(doc.metadata))
                except (TypeError, ValueError) as exc:
                    raise DataFormatError(f"metadata is not JSON-serialisable: {exc}", doc_id=doc.id) from exc
            except DataError as exc:
                if on_invalid == "raise":
                    raise
                skipped[type(exc).__name__] += 1
                logger.warning("skipped %s", exc)
                continue
            seen.add(doc.id)
            docs.append(doc)
        if isinstance(documents, DocumentSource):
            skipped.update(documents.skipped)
        return docs, skipped

    def _new_manifest(self, enc: Encoder, chunker: Chunker) -> dict[str, Any]:
        source = self._model_arg
        return {
            "format": MANIFEST_FORMAT,
            "tamis_version": __version__,
            "created": _now(),
            "model": {
                "name": enc.name,
                "source": os.fspath(source) if isinstance(source, (str, os.PathLike)) else enc.name,
                "fingerprint": enc.fingerprint,
                "backend": getattr(enc, "backend", None),
                "max_seq_length": enc.max_seq_length,
            },
            "dim": enc.dim,
            "distance": "cosine",
            "chunking": {"max_tokens": chunker.max_tokens, "overlap": chunker.overlap},
            "chunked": False,
            "ingest": {"state": "empty"},
            "calibration": None,
        }

    def _write_manifest(self) -> None:
        assert self.manifest is not None
        meta = dict(self.store.get_metadata(self.physical))
        meta["tamis"] = self.manifest
        self.store.set_metadata(self.physical, meta)

    def index(
        self,
        documents: Iterable[Document],
        *,
        batch_size: int = 512,
        encode_batch_size: int = 64,
        on_invalid: OnInvalid = "raise",
        max_document_bytes: int = 1_000_000,
        chunk_overlap: int | None = None,
        progress: ProgressCallback | None = None,
        optimize: bool = True,
    ) -> IndexReport:
        """Encode and write ``documents``; idempotent, resumable.

        The input is validated in full before anything is written. Point ids are deterministic
        (document id + chunk number), so a re-run rewrites nothing that is unchanged, and a run
        killed half-way resumes where it stopped, without loss or duplicates. Encoding runs in a
        worker thread overlapped with the writes.

        Args:
            documents: `Document` objects, e.g. from `load_beir` / `load_jsonl` / `load_directory`.
            batch_size: chunks per write to the store.
            encode_batch_size: texts per forward pass of the model.
            on_invalid: ``"raise"`` at the first invalid document (nothing is written), or
                ``"skip"`` it and count it in the report.
            max_document_bytes: documents larger than this (UTF-8 bytes of text) are invalid.
            chunk_overlap: tokens shared by consecutive chunks of a long document (default: the
                collection's setting, or min(32, max tokens / 4) for a new one).
            progress: called as ``progress(chunks_done, chunks_total)`` after each acknowledged
                write (from the writer thread).
            optimize: build the HNSW index at the end (recommended).
        """
        if on_invalid not in ("raise", "skip"):
            raise ConfigError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
        if batch_size < 1 or encode_batch_size < 1:
            raise ConfigError(f"batch sizes must be positive, got {batch_size}, {encode_batch_size}")
        t0 = time.perf_counter()
        docs, skipped = self._validate(documents, on_invalid=on_invalid, max_document_bytes=max_document_bytes)
        report = IndexReport(skipped=dict(skipped))
        if not docs:
            raise DataError(
                "no valid documents to index" + (f" (skipped: {dict(skipped)})" if skipped else "")
                + "; check the input path and field names"
            )
        enc = self.encoder
        max_tokens = max(8, enc.max_seq_length - 2)
        if chunk_overlap is None:
            prev = (self.manifest or {}).get("chunking") or {}
            chunk_overlap = int(prev.get("overlap", min(32, max_tokens // 4)))
        chunker = Chunker(enc.tokenizer, max_tokens=max_tokens, overlap=chunk_overlap)

        if self.manifest is None:
            manifest = self._new_manifest(enc, chunker)
            manifest["ingest"] = {"state": "in_progress", "started": _now()}
            self.store.create_collection(self.physical, dim=enc.dim, distance="cosine", metadata={"tamis": manifest})
            self.manifest = manifest
            if self._link_alias:
                # a crash right here leaves `<name>__v1` without its alias: open_collection adopts it
                _link(self.store, self.name, self.physical)
                self._link_alias = False
        else:
            dim = self.store.collection_dim(self.physical)
            if dim != enc.dim:
                raise DimensionMismatchError(
                    f"collection {self.name!r} holds {dim}-d vectors; the encoder makes {enc.dim}-d ones"
                )
            self.manifest["ingest"] = {**self.manifest.get("ingest", {}), "state": "in_progress", "started": _now()}
            self._write_manifest()

        # chunk every document; longest first is not needed, but length-sorted order makes
        # encoder batches evenly padded, which is what makes encoding fast
        chunked: list[tuple[Document, list[str]]] = [(d, chunker.split(d.embed_text)) for d in docs]
        report.documents = len(docs)
        report.chunks = sum(len(c) for _, c in chunked)

        # skip what is already there with the same content (idempotence, resume)
        existing = self._existing(d.id for d in docs)
        todo: list[tuple[Document, list[str], str]] = []
        stale: list[str] = []
        for doc, chunks in chunked:
            h = doc.content_hash()
            prev = existing.get(doc.id)
            if prev is not None and prev[0] == h and prev[1] == len(chunks):
                report.unchanged += 1
                continue
            if prev is not None and prev[1] > len(chunks):
                stale.extend(point_id(doc.id, i) for i in range(len(chunks), prev[1]))
            todo.append((doc, chunks, h))
        todo.sort(key=lambda dc: len(dc[0].embed_text))

        total = sum(len(c) for _, c, _ in todo)
        if progress is not None:
            progress(0, total)
        if any(len(c) > 1 for _, c, _ in todo) and not self.manifest.get("chunked"):
            self.manifest["chunked"] = True
            self._write_manifest()
        report.encoded = self._write_pipeline(todo, batch_size, encode_batch_size, total, progress)
        if stale:
            self.store.delete_points(self.physical, stale)
            report.stale_chunks_deleted = len(stale)
        if optimize:
            self.store.optimize(self.physical)
        self.store.flush(self.physical)
        report.points = self.store.count(self.physical)
        self.manifest["ingest"] = {
            "state": "complete", "finished": _now(), "documents": self.store.count(self.physical, filter={"chunk": 0}),
            "points": report.points,
        }
        self._write_manifest()
        report.seconds = time.perf_counter() - t0
        return report

    def _existing(self, doc_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
        """{doc id: (content hash, number of chunks)} for documents already stored."""
        out: dict[str, tuple[str, int]] = {}
        ids = list(doc_ids)
        by_point = {point_id(d, 0): d for d in ids}
        keys = list(by_point)
        for start in range(0, len(keys), 1000):
            for rec in self.store.retrieve(self.physical, keys[start : start + 1000], with_payload=True):
                p = rec.payload
                doc_id = by_point.get(rec.id)
                if doc_id is not None and "hash" in p:
                    out[doc_id] = (str(p["hash"]), int(p.get("n_chunks", 1)))
        # a multi-chunk document counts as present only if all its chunks are (a store whose
        # upserts are not atomic may have been killed half-way through one)
        rest = {point_id(d, i): d for d, (_, n) in out.items() for i in range(1, n)}
        found: set[str] = set()
        keys = list(rest)
        for start in range(0, len(keys), 1000):
            found.update(r.id for r in self.store.retrieve(self.physical, keys[start : start + 1000], with_payload=False))
        for pid in set(rest) - found:
            h, n = out[rest[pid]]
            out[rest[pid]] = ("incomplete", n)
        return out

    def _write_pipeline(
        self,
        todo: list[tuple[Document, list[str], str]],
        batch_size: int,
        encode_batch_size: int,
        total: int,
        progress: ProgressCallback | None,
    ) -> int:
        """Encode in a worker thread while this thread writes; all chunks of a document in one write."""
        # (point id, text to embed, payload); all chunks of a document go into one write
        batches: list[list[tuple[str, str, dict[str, Any]]]] = []
        current: list[tuple[str, str, dict[str, Any]]] = []
        for doc, chunks, h in todo:
            if current and len(current) + len(chunks) > batch_size:
                batches.append(current)
                current = []
            current.extend(
                (point_id(doc.id, i), c, _payload(doc, i, c, n_chunks=len(chunks), content_hash=h))
                for i, c in enumerate(chunks)
            )
        if current:
            batches.append(current)

        # the model runs on this thread (torch's thread pool is fastest from the thread that made
        # it); a writer thread upserts what is encoded, so the store is never the bottleneck
        enc = self.encoder
        q: queue.Queue[tuple[list[tuple[str, str, dict[str, Any]]], np.ndarray] | None] = queue.Queue(maxsize=2)
        failure: list[BaseException] = []
        done = 0

        def writer() -> None:
            nonlocal done
            while True:
                item = q.get()
                if item is None or failure:
                    return
                batch, vecs = item
                try:
                    points = [StorePoint(pid, vecs[j], payload) for j, (pid, _, payload) in enumerate(batch)]
                    self.store.upsert(self.physical, points)
                    done += len(batch)
                    if progress is not None:
                        progress(done, total)
                except BaseException as exc:  # handed to the encoding thread
                    failure.append(exc)
                    return

        thread = threading.Thread(target=writer, name="tamis-write", daemon=True)
        thread.start()
        try:
            for batch in batches:
                if failure:
                    break
                vecs = enc.encode([text for _, text, _ in batch], kind="document", batch_size=encode_batch_size)
                if vecs.shape != (len(batch), enc.dim):
                    raise DimensionMismatchError(
                        f"encoder returned vectors of shape {vecs.shape} for {len(batch)} texts; expected dim {enc.dim}"
                    )
                while thread.is_alive():
                    try:
                        q.put((batch, vecs), timeout=0.1)
                        break
                    except queue.Full:
                        continue
        finally:
            while thread.is_alive():
                try:
                    q.put(None, timeout=0.1)
                    break
                except queue.Full:
                    continue
            thread.join()
        if failure:
            raise failure[0]
        return done

    # -- searching ---------------------------------------------------------------------------
    def _require(self) -> dict[str, Any]:
        if self.manifest is None:
            raise CollectionNotFoundError(
                f"collection {self.name!r} does not exist yet; index documents into it first"
            )
        return self.manifest

    def _params(self, hnsw_ef: int | None, exact: bool) -> SearchParams:
        if hnsw_ef is not None and hnsw_ef < 1:
            raise ConfigError(f"hnsw_ef must be positive, got {hnsw_ef}")
        return SearchParams(hnsw_ef=hnsw_ef or DEFAULT_HNSW_EF, exact=exact)

    def store_filter(self, filter: Any) -> Any:
        """A user filter -> the store's: mapping keys name metadata fields unless top-level."""
        if filter is None or not isinstance(filter, Mapping):
            return filter
        from tamis.stores import validate_filter

        out = {}
        for key, cond in filter.items():
            if not isinstance(key, str):
                raise ConfigError(f"filter keys must be strings, got {key!r}")
            full = key if key in _TOP_LEVEL_KEYS or key.startswith("metadata.") else f"metadata.{key}"
            if key == "id":
                full = "doc_id"
            out[full] = cond
        validate_filter(out)
        return out

    def encode_queries(self, queries: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Query vectors, with the model's query prompt if it has one."""
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise ConfigError(f"a query must be a non-empty string, got {q!r}")
        return self.encoder.encode(list(queries), kind="query", batch_size=batch_size)

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Any = None,
        score_threshold: float | None = None,
        hnsw_ef: int | None = None,
        exact: bool = False,
        relevance_filter: bool = True,
        min_relevance: float | None = None,
    ) -> list[Hit]:
        """The ``k`` best documents for ``query``, best first.

        On a calibrated collection (`calibrate`), only documents whose calibrated relevance
        reaches the adapter's threshold come back, each with ``relevance``; the store applies the
        equivalent per-query cosine cutoff itself. An empty list means nothing relevant.

        Args:
            query: the question or keywords.
            k: how many documents at most.
            filter: payload filter; keys name metadata fields (``{"lang": "en"}``), or ``id``,
                ``title``; a list means any of; ``{"gte": 1, "lt": 5}`` a range; or a native filter.
            score_threshold: only hits with cosine >= this (done by the store).
            hnsw_ef, exact: search precision (see `SearchParams`).
            relevance_filter: ``False``: the plain top-``k``, with ``relevance`` still attached.
            min_relevance: a relevance threshold for this call instead of the adapter's own.
        """
        vec = self.encode_queries([query])[0]
        return self.search_vector(
            vec, k, filter=filter, score_threshold=score_threshold, hnsw_ef=hnsw_ef, exact=exact,
            relevance_filter=relevance_filter, min_relevance=min_relevance,
        )

    def search_vector(
        self,
        vector: np.ndarray,
        k: int = 10,
        *,
        filter: Any = None,
        score_threshold: float | None = None,
        hnsw_ef: int | None = None,
        exact: bool = False,
        relevance_filter: bool = True,
        min_relevance: float | None = None,
    ) -> list[Hit]:
        """`search` with a query vector made by the collection's encoder."""
        return self.search_vectors(
            np.asarray(vector, dtype=np.float32)[None, :], k, filter=filter,
            score_thresholds=None if score_threshold is None else [score_threshold],
            hnsw_ef=hnsw_ef, exact=exact, relevance_filter=relevance_filter, min_relevance=min_relevance,
        )[0]

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        filter: Any = None,
        score_threshold: float | None = None,
        hnsw_ef: int | None = None,
        exact: bool = False,
        batch_size: int = 64,
        relevance_filter: bool = True,
        min_relevance: float | None = None,
    ) -> list[list[Hit]]:
        """`search` for many queries: encoded in batches, searched in one store call per batch."""
        out: list[list[Hit]] = []
        for start in range(0, len(queries), batch_size):
            part = list(queries[start : start + batch_size])
            vecs = self.encode_queries(part, batch_size=batch_size)
            out.extend(
                self.search_vectors(
                    vecs, k, filter=filter,
                    score_thresholds=None if score_threshold is None else [score_threshold] * len(part),
                    hnsw_ef=hnsw_ef, exact=exact, relevance_filter=relevance_filter, min_relevance=min_relevance,
                )
            )
        return out

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        filter: Any = None,
        score_thresholds: Sequence[float | None] | None = None,
        hnsw_ef: int | None = None,
        exact: bool = False,
        relevance_filter: bool = True,
        min_relevance: float | None = None,
    ) -> list[list[Hit]]:
        """Search many query vectors at once; hits are collapsed to one per document.

        The collection's query-time stage (the relevance filter of a calibrated collection) runs
        around the store query; see `search` for ``relevance_filter`` and ``min_relevance``.
        """
        manifest = self._require()
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != manifest["dim"]:
            raise DimensionMismatchError(
                f"query vectors have shape {vectors.shape}; collection {self.name!r} holds {manifest['dim']}-d vectors"
            )
        if score_thresholds is not None and len(score_thresholds) != len(vectors):
            raise ConfigError(f"{len(score_thresholds)} thresholds for {len(vectors)} queries")
        self._params(hnsw_ef, exact)
        from tamis.collection._stages import SearchRequest

        request = SearchRequest(
            vectors=vectors, k=k, filter=self.store_filter(filter),
            score_thresholds=None if score_thresholds is None else list(score_thresholds),
            hnsw_ef=hnsw_ef, exact=exact,
            options={"relevance_filter": bool(relevance_filter), "min_relevance": min_relevance},
        )
        stage = self.stage
        if stage is None:
            if min_relevance is not None:
                raise ConfigError(
                    f"min_relevance={min_relevance!r} needs a calibrated collection; {self.name!r} has no "
                    "Cosine Adapter yet (run `tamis calibrate` or Collection.calibrate)"
                )
            return self._search_store(request)
        return stage(request, self._search_store)

    def _search_store(self, request: Any) -> list[list[Hit]]:
        """One validated `SearchRequest` against the store (the innermost step of every search)."""
        manifest = self._require()
        vectors, k = request.vectors, request.k
        params = self._params(request.hnsw_ef, request.exact)
        sfilter = request.filter
        score_thresholds = request.score_thresholds
        chunked = bool(manifest.get("chunked"))
        fetch = k if not chunked else k * 4 + 10
        if score_thresholds is not None:
            # Qdrant keeps scores strictly above the threshold; one float32 step down makes it >=
            score_thresholds = [None if t is None else _inclusive(t) for t in score_thresholds]
        results = self.store.search_batch(
            self.physical, vectors, k=fetch, score_thresholds=score_thresholds, filter=sfilter, params=params
        )
        out = []
        for i, points in enumerate(results):
            hits = _collapse(points, k)
            if chunked and len(points) == fetch and len(hits) < k:
                thr = None if score_thresholds is None else score_thresholds[i]
                more = self.store.search(
                    self.physical, vectors[i], k=fetch * 8, score_threshold=thr, filter=sfilter, params=params
                )
                hits = _collapse(more, k)
            out.append(hits)
        return out

    # -- calibration (the Cosine Adapter) ------------------------------------------------------
    @property
    def adapter(self) -> Any:
        """The collection's `CosineAdapter`, or None when it is not calibrated."""
        manifest = self._require()
        cal = manifest.get("calibration")
        if not cal:
            return None
        from tamis.calibration import CosineAdapter

        return CosineAdapter.from_dict(cal["adapter"], fingerprint=manifest["model"]["fingerprint"])

    @property
    def stage(self) -> Any:
        """The query-time stage built from the manifest (the relevance filter), or None."""
        manifest = self._require()
        cal = manifest.get("calibration")
        if not cal:
            return None
        key = (cal.get("version"), cal.get("adapter", {}).get("weights_sha256"))
        cached = self._stage_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        from tamis import registry

        factory = registry.load(registry.STAGES, cal.get("stage", "relevance"))
        stage = factory.from_manifest(cal, fingerprint=manifest["model"]["fingerprint"])
        self._stage_cache = (key, stage)
        return stage

    def set_adapter(self, adapter: Any) -> None:
        """Store ``adapter`` (a fitted `CosineAdapter` with a threshold) with the collection, or remove
        the calibration with ``None``. Searches filter by it from then on.

        Raises:
            ModelMismatchError: the adapter was calibrated for another model.
            CalibrationError: the adapter has no threshold yet.
        """
        manifest = self._require()
        if adapter is None:
            manifest["calibration"] = None
            self._write_manifest()
            return
        from tamis._errors import CalibrationError

        if adapter.fingerprint != manifest["model"]["fingerprint"]:
            raise ModelMismatchError(
                f"the adapter was calibrated for the model with fingerprint {adapter.fingerprint[:12]}; collection "
                f"{self.name!r} holds vectors of {manifest['model']['name']!r} ({manifest['model']['fingerprint'][:12]}). "
                "Calibrate it on this collection"
            )
        if adapter.threshold is None:
            raise CalibrationError("the adapter has no threshold; call adapter.fit_threshold(...) first")
        prev = manifest.get("calibration") or {}
        manifest["calibration"] = {
            "version": int(prev.get("version", 0)) + 1,
            "stage": "relevance",
            "created": _now(),
            "adapter": adapter.to_dict(),
        }
        self._write_manifest()

    def calibrate(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]] | None,
        dev_queries: Mapping[str, str] | None = None,
        dev_qrels: Mapping[str, Mapping[str, int]] | None = None,
        *,
        target_recall: float | None = None,
        target_precision: float | None = None,
        method: str = "empirical",
        teacher: Any = None,
        config: Any = None,
        save: bool = True,
        **overrides: Any,
    ) -> Any:
        """Train a Cosine Adapter on this collection, fit its threshold, and store it with the collection.

        Args:
            queries, qrels: training queries ``{id: text}`` and judgements ``{query id: {doc id: grade}}``.
            dev_queries, dev_qrels: held-out queries for early stopping and the threshold
                (default: a share of the training queries, ``holdout``).
            target_recall / target_precision: what the threshold aims at on the dev queries
                (default: recall 0.9).
            method: ``"empirical"`` or ``"conformal"`` (a recall guarantee; see `CosineAdapter.fit_threshold`).
            teacher: soft labels from ``teacher(query texts, doc texts) -> probabilities``.
            config, overrides: `AdapterConfig` fields (``g="sqrt"``, ``use_embedding=True``, ...).
            save: store the adapter with the collection (searches filter by it from then on).

        Returns:
            the fitted `CosineAdapter`; its ``threshold_report`` and ``extra["training"]`` say how it did.
        """
        from tamis.calibration._adapter import CalibrationData, CosineAdapter, _config

        cfg = _config(config, overrides)
        if target_recall is None and target_precision is None:
            target_recall = 0.9
        enc = self.encoder
        train = CalibrationData.from_collection(self, queries, qrels, k=cfg.candidates, teacher=teacher)
        dev = None
        if dev_queries is not None:
            dev = CalibrationData.from_collection(self, dev_queries, dev_qrels, k=cfg.candidates)
        elif cfg.holdout > 0 and len(train) >= 10:
            perm = np.random.default_rng(cfg.seed).permutation(len(train))
            n_dev = max(1, int(round(len(train) * cfg.holdout)))
            dev, train = train.subset(np.sort(perm[:n_dev])), train.subset(np.sort(perm[n_dev:]))
        adapter = CosineAdapter.fit(train, dev, fingerprint=enc.fingerprint, config=cfg)
        adapter.fit_threshold(
            dev if dev is not None else train, target_recall=target_recall, target_precision=target_precision,
            method=method,  # type: ignore[arg-type]
        )
        from tamis.evaluation import fit_baselines

        adapter.extra["baselines"] = fit_baselines(
            train, dev if dev is not None else train, target_recall=target_recall, target_precision=target_precision
        )
        if save:
            self.set_adapter(adapter)
        return adapter

    # -- information ---------------------------------------------------------------------------
    def count(self, *, filter: Any = None, documents: bool = False) -> int:
        """Points (chunks) in the collection, or documents with ``documents=True``."""
        self._require()
        f = self.store_filter(filter)
        if documents:
            f = {**(f or {}), "chunk": 0} if (f is None or isinstance(f, Mapping)) else f
        return self.store.count(self.physical, filter=f)

    def info(self) -> dict[str, Any]:
        """The manifest plus live counts."""
        manifest = self._require()
        out = {
            "name": self.name,
            "physical": self.physical,
            "store": self.store.kind,
            "points": self.store.count(self.physical),
            **manifest,
        }
        cal = manifest.get("calibration")
        if cal and isinstance(cal.get("adapter"), Mapping) and "weights" in cal["adapter"]:
            # the weights are base64 safetensors: show their size, not the bytes
            adapter = {k: v for k, v in cal["adapter"].items() if k != "weights"}
            adapter["weights"] = f"<{len(cal['adapter']['weights']) * 3 // 4:,} bytes>"
            out["calibration"] = {**cal, "adapter": adapter}
        return out

    def delete(self) -> None:
        """Delete the collection: its alias and every version of it (``<name>__v<N>``), with all their points.

        Versions kept by ``reindex(keep_old=True)`` and any left half-built by a crash go too;
        the version the name serves goes last, so an interrupted delete leaves the name working.
        """
        st = self.store
        current, _ = _find(st, self.name)
        for physical in _versions(st, self.name).values():
            if physical != current and _manifest_of(st, physical) is not None:
                st.delete_collection(physical)
        for physical in dict.fromkeys((self.physical, current)):
            if physical is not None and st.collection_exists(physical) and st.resolve_alias(physical) is None:
                st.delete_collection(physical)  # the store drops the aliases pointing at it
        st.delete_alias(self.name)
        self.manifest = None
        self.physical, self._link_alias = _version_name(self.name, 1), True
        self._stage_cache = None

    # -- a new model for the same collection ---------------------------------------------------
    def reindex(
        self,
        documents: Iterable[Document] | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        encoder: Encoder | None = None,
        keep_old: bool = False,
        **index_options: Any,
    ) -> IndexReport:
        """Re-index the collection with another model, switching over only when it is complete.

        A new physical collection (``<name>__v<N>``) is built next to the current one; the name
        keeps answering from the current version until the new one is complete, then the alias
        ``name`` is switched to it in one atomic step (a Qdrant alias on a server; an atomically
        replaced aliases file for Edge): a query gets the old version before, the new one after.
        The new version starts without a calibration: a Cosine Adapter fitted for the old model
        is never applied to the new one (calibrate again).

        tamis creates every collection as ``<name>__v1`` behind the alias ``name``, so every
        re-index is such a switch. Only a collection stored under its own name (made by an
        earlier tamis, which did not version collections from the start) differs, on its first
        re-index: a name cannot be a collection and an alias at once, so that collection is
        deleted just before the alias is created, and the name resolves to nothing for that
        moment (should a crash come in between, opening the name adopts the new version).

        Args:
            documents: the documents to index; None re-reads them from the current version
                (only possible when no document was chunked).
            model, encoder: the new model (default: the packaged all-MiniLM-L6-v2).
            keep_old: keep the previous version's collection instead of deleting it after the switch.
            index_options: passed to `index` (``batch_size``, ``progress``, ``on_invalid`` ...).

        Returns:
            the `IndexReport` of building the new version.

        Example:
            >>> col = open_collection("docs")                          # doctest: +SKIP
            >>> col.reindex(load_beir("scifact"), model="./my-model")  # doctest: +SKIP
        """
        if model is not None and encoder is not None:
            raise ConfigError("pass model= or encoder=, not both")
        manifest = self._require()
        if documents is None:
            if manifest.get("chunked"):
                raise ConfigError(
                    f"collection {self.name!r} holds chunked documents, which cannot be re-read whole; "
                    "pass documents= (the original input)"
                )
            documents = [
                Document(
                    id=str(r.payload["doc_id"]), text=str(r.payload.get("text", "")),
                    title=str(r.payload.get("title", "")), metadata=dict(r.payload.get("metadata") or {}),
                )
                for r in self.store.scroll(self.physical, with_payload=True)
            ]
        new_physical = _version_name(self.name, max(_versions(self.store, self.name), default=1) + 1)
        new = Collection(
            self.name, self.store, physical=new_physical, manifest=None, model=model, encoder=encoder,
            backend=self._backend, device=self._device,
        )
        try:
            report = new.index(documents, **index_options)
        except BaseException:
            # the half-built version is not reachable by name; remove it, the old one stays in service
            try:
                self.store.delete_collection(new_physical)
            except Exception:  # pragma: no cover - best effort
                logger.warning("could not remove the half-built version %r", new_physical)
            raise
        old_physical = self.physical
        if old_physical == self.name:
            # stored under its own name (see above): a name cannot be a collection and an alias
            self.store.delete_collection(old_physical)
        self.store.set_alias(self.name, new_physical)
        if not keep_old and old_physical != self.name:
            self.store.delete_collection(old_physical)
        self.physical, self.manifest = new_physical, new.manifest
        self._model_arg, self._encoder = model, new._encoder
        self._stage_cache = None
        return report


def _inclusive(threshold: float) -> float:
    """The largest float32 below ``threshold``: an engine keeping ``score > t'`` then keeps ``score >= t``."""
    return float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))


def _payload(doc: Document, number: int, text: str, *, n_chunks: int, content_hash: str) -> dict[str, Any]:
    return {
        "doc_id": doc.id,
        "chunk": number,
        "n_chunks": n_chunks,
        "title": doc.title,
        # an unchunked document keeps its own text; a chunk keeps the piece that was embedded
        "text": doc.text if n_chunks == 1 else text,
        "metadata": dict(doc.metadata),
        "hash": content_hash,
    }


def _collapse(points: Sequence[ScoredPoint], k: int) -> list[Hit]:
    """Scored points -> at most ``k`` hits, one per document (its best chunk), best first."""
    hits: list[Hit] = []
    seen: set[str] = set()
    for p in points:
        pl = p.payload
        doc_id = str(pl.get("doc_id", p.id))
        if doc_id in seen:
            continue
        seen.add(doc_id)
        hits.append(
            Hit(
                id=doc_id, score=float(p.score), text=str(pl.get("text", "")), title=str(pl.get("title", "")),
                metadata=pl.get("metadata") or {}, chunk=int(pl.get("chunk", 0)),
            )
        )
        if len(hits) == k:
            break
    return hits
