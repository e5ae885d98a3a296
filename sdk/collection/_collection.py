"""Collections: documents -> vectors in a Qdrant store, bound to the model that made them.

`open_collection` is the one entry point. `Collection` binds a collection to its model and puts
together the parts that live in their own modules: ingest (`Indexing`, in ``_ingest``), search
(`Searching`, in ``_search``) and its query-time stages (`Staging`, in ``_pipeline``), versions
behind an alias (``_versions``) and the store opening (``_open``).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from tamis._errors import ConfigError, ModelError, ModelMismatchError, TamisError
from tamis.collection import _versions
from tamis.collection._configure import (
    MigrationReport,
    carried,
    migrate_payloads,
    needs_migration,
)
from tamis.collection._ingest import Indexing, IndexReport, stored_documents
from tamis.collection._manifest import for_display, upgraded
from tamis.collection._pipeline import Pipeline
from tamis.collection._search import Searching, store_filter
from tamis.data import Document
from tamis.encoders import Encoder, load_encoder
from tamis.stores import PAYLOAD_FORMAT, CollectionSettings, VectorStore

__all__ = ["Collection"]

logger = logging.getLogger("tamis")


class Collection(Indexing, Searching):
    """A named collection in a vector store, bound to its model. Build with `open_collection`.

    Its methods come in groups: `index` (see `Indexing`); `search`, `search_vector`, `search_batch`,
    `search_vectors` (see `Searching`); `stages`, `set_stage`, `remove_stage`, `adapter`,
    `set_adapter`, `calibrate` (see `Staging`); and, here, the model, `count`, `info`, `delete`
    and `reindex`.
    """

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
        self.manifest = None if manifest is None else upgraded(manifest)
        self._owns_store = owns_store
        self._model_arg = model
        self._encoder = encoder
        self._backend = backend
        self._device = device
        self._encoder_lock = threading.Lock()
        self._built_pipeline: tuple[Any, Pipeline] | None = None  # (the stage list's key, its pipeline)
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
        """Whether the collection has been created (by a first `index`)."""
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

    # -- information ---------------------------------------------------------------------------
    def count(self, *, filter: Any = None, documents: bool = False) -> int:
        """Points (chunks) in the collection, or documents with ``documents=True``."""
        self._require()
        f = store_filter(filter)
        if documents:
            f = {**(f or {}), "chunk": 0} if (f is None or isinstance(f, Mapping)) else f
        return self.store.count(self.physical, filter=f)

    def missing_documents(self, doc_ids: Iterable[str]) -> set[str]:
        """The ids among ``doc_ids`` that name no document of the collection (e.g. judged in qrels of
        another corpus)."""
        from tamis.collection._write import point_id

        self._require()
        by_point = {point_id(str(d), 0): str(d) for d in doc_ids}
        keys = list(by_point)
        found: set[str] = set()
        for start in range(0, len(keys), 1000):
            found.update(r.id for r in self.store.retrieve(self.physical, keys[start : start + 1000], with_payload=False))
        return {d for p, d in by_point.items() if p not in found}

    def info(self) -> dict[str, Any]:
        """The manifest plus live counts; stored weights show as their size, not their bytes.

        ``calibration`` is the stage holding the Cosine Adapter (``version``, ``stage``, ``created``,
        ``adapter``), or None.
        """
        manifest = self._require()
        points, problem = self._check_points(manifest)
        out = {"name": self.name, "physical": self.physical, "store": self.store.kind, "points": points,
               **for_display(manifest)}
        if problem is not None:
            out["ingest"] = {**(manifest.get("ingest") or {}), "state": "damaged", "problem": problem}
        return out

    def _check_points(self, manifest: Mapping[str, Any]) -> tuple[int | None, str | None]:
        """(points, what is wrong or None): the count against what the last complete ingest left, and
        whether a sample of the vectors can be read."""
        try:
            points = self.store.count(self.physical)
        except TamisError as exc:
            return None, f"its points cannot be counted: {exc}"
        ingest = manifest.get("ingest") or {}
        expected = ingest.get("points")
        if ingest.get("state") == "complete" and isinstance(expected, int) and points != expected:
            return points, (
                f"{points:,} points where its last complete ingest left {expected:,}: files of the store are "
                "missing or damaged; index the documents again (or restore a backup)"
            )
        try:
            for _ in itertools.islice(self.store.scroll(self.physical, with_payload=False, with_vectors=True), 256):
                pass
        except TamisError as exc:
            return points, f"its vectors cannot be read ({exc}); index the documents again (or restore a backup)"
        return points, None

    def delete(self) -> None:
        """Delete the collection: its alias and every version of it (``<name>__v<N>``), with all their points.

        Versions kept by ``reindex(keep_old=True)`` and any left half-built by a crash go too;
        the version the name serves goes last, so an interrupted delete leaves the name working.
        """
        _versions.delete_all(self.store, self.name, self.physical)
        self.manifest = None
        self.physical, self._link_alias = _versions.version_name(self.name, 1), True
        self._built_pipeline = None

    def migrate(self) -> MigrationReport:
        """Rewrite the points in the current payload format (readable by langchain-qdrant and LlamaIndex),
        keeping their vectors (no re-encoding); idempotent, resumable. `index` does it on its own first."""
        manifest = self._require()
        report = migrate_payloads(self.store, self.physical)
        if needs_migration(manifest):
            manifest["payload"] = {"format": PAYLOAD_FORMAT}
            self._write_manifest()
        return report

    # -- a new model for the same collection ---------------------------------------------------
    def _next_version(self, model: str | os.PathLike[str] | None, encoder: Encoder | None) -> Collection:
        """The version a re-index builds: a half-built one of the same model (a crashed re-index) resumed,
        else a new one; every other half-built version is removed."""
        new = Collection(
            self.name, self.store, physical=None, manifest=None, model=model, encoder=encoder,
            backend=self._backend, device=self._device,
        )
        fingerprint = new.encoder.fingerprint
        resume = None
        for physical, manifest in _versions.half_built(self.store, self.name, self.physical):
            if resume is None and manifest["model"].get("fingerprint") == fingerprint:
                resume = physical, manifest
                logger.warning("collection %r: resuming the half-built version %r", self.name, physical)
                continue
            logger.warning("collection %r: removing the half-built version %r", self.name, physical)
            self.store.delete_collection(physical)
        if resume is not None:
            new.physical, new.manifest = resume[0], upgraded(dict(resume[1]))
        else:
            new.physical = _versions.next_version(self.store, self.name)
        return new

    def reindex(
        self,
        documents: Iterable[Document] | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        encoder: Encoder | None = None,
        keep_old: bool = False,
        hybrid: bool | None = None,
        settings: CollectionSettings | Mapping[str, Any] | None = None,
        **index_options: Any,
    ) -> IndexReport:
        """Re-index the collection with another model, switching over only when it is complete.

        A new physical collection (``<name>__v<N>``) is built next to the current one; the name
        keeps answering from the current version until the new one is complete, then the alias
        ``name`` is switched to it in one atomic step (a Qdrant alias on a server; an atomically
        replaced aliases file for Edge): a query gets the old version before, the new one after.
        The new version starts without stages: a Cosine Adapter fitted for the old model
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
            hybrid: give the new version BM25 sparse vectors (True: upgrade a dense collection) or not
                (False); None keeps what the current version has.
            settings: changes to the collection's `CollectionSettings` for the new version; the current
                version's settings (quantization, payload indexes, shards ...) are carried over.
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
            documents = stored_documents(self.store, self.physical, manifest.get("payload"))
        new = self._next_version(model, encoder)
        new_physical = new.physical
        new._hybrid_new = self.hybrid if hybrid is None else bool(hybrid)
        new._settings = carried(manifest, settings)
        try:
            report = new.index(documents, **index_options)
        except BaseException:
            # the half-built version is not reachable by name; remove it, the old one stays in service
            try:
                self.store.delete_collection(new_physical)
            except Exception:  # pragma: no cover - best effort
                logger.warning("could not remove the half-built version %r", new_physical)
            raise
        _versions.switch(self.store, self.name, self.physical, new_physical, keep_old=keep_old)
        self.physical, self.manifest = new_physical, new.manifest
        self._model_arg, self._encoder = model, new._encoder
        self._built_pipeline = None
        return report
