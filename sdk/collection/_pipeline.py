"""The stage pipeline a collection's manifest lists, and `Staging`: adding, replacing and removing stages.

`Collection` knows no stage by name: each entry of ``manifest["stages"]`` names a stage registered
under ``tamis.stages`` (`tamis.registry`), built with its settings (see `tamis.collection.Stage`).
The Cosine Adapter is one such stage's settings: `Staging.set_adapter` stores it with the stage the
adapter names (``adapter.stage``), `Staging.calibrate` runs `tamis.calibration.calibrate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tamis._errors import CalibrationError, ConfigError, ModelMismatchError
from tamis.collection._manifest import CollectionBase, adapter_entry, stages_with
from tamis.collection._options import FIELDS
from tamis.collection._stages import Hit, SearchFn, SearchRequest, Stage
from tamis.stores import json_copy

__all__: list[str] = []


class Pipeline:
    """A collection's stages, built from its manifest, run in order around the store query.

    Args:
        stages: the built stages, outermost first.
        collection: the collection's name (for messages).
    """

    def __init__(self, stages: Sequence[Stage], *, collection: str) -> None:
        self.stages = tuple(stages)
        self.collection = collection
        self._understood = frozenset(o for s in self.stages for o in s.options)
        self._ignored: set[str] = set()  # options of stages this collection lacks, harmless without them

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], *, collection: str, entries: Sequence[Mapping[str, Any]] | None = None
    ) -> Pipeline:
        """Build every stage ``manifest["stages"]`` lists (or ``entries``, a new list), through `tamis.registry`."""
        if entries is None:
            entries = manifest.get("stages") or ()
        stages = [build_stage(e["name"], e.get("settings") or {}, manifest, collection=collection) for e in entries]
        return cls(stages, collection=collection)

    def __call__(self, request: SearchRequest, search: SearchFn) -> list[list[Hit]]:
        """Hits for ``request``: each stage's ``search`` runs the rest of the pipeline, the last's is ``search``."""
        for name in sorted(request.options.keys() - self._understood - self._ignored):
            self._check_unknown(name, request.options[name])
        for stage in reversed(self.stages):
            search = _bind(stage, search)
        return search(request)

    def _check_unknown(self, name: str, value: Any) -> None:
        """Accept a stage option no stage here reads if its stage says so; a `ConfigError` otherwise."""
        providers = _stages_providing(name)
        if any(name in getattr(factory, "options_without_stage", ()) for _, factory in providers):
            self._ignored.add(name)
            return
        if providers:
            stage_name, factory = providers[0]
            need = getattr(factory, "requirement", None) or (
                f"the {stage_name!r} stage: add it with Collection.set_stage({stage_name!r}, settings)"
            )
            raise ConfigError(
                f"{name}={value!r} needs {need}; collection {self.collection!r} has no {stage_name!r} stage"
            )
        here = sorted(self._understood)
        raise ConfigError(
            f"unknown search option {name!r}; a search takes {', '.join(sorted(FIELDS - {'stage_options'}))}"
            + (f", and the options of this collection's stages: {', '.join(here)}" if here else "")
            + " (any other option belongs to a stage registered under 'tamis.stages' and added to the collection)"
        )


def build_stage(name: str, settings: Mapping[str, Any], manifest: Mapping[str, Any], *, collection: str) -> Stage:
    """The stage ``name`` built with ``settings`` for the collection of ``manifest``."""
    from tamis import registry

    factory = registry.load(registry.STAGES, name)
    stage = factory.from_manifest(settings, fingerprint=manifest["model"]["fingerprint"])
    if not isinstance(stage, Stage):
        raise ConfigError(
            f"the stage {name!r} of collection {collection!r} ({type(stage).__name__}) does not implement "
            "tamis.collection.Stage: it needs `name`, `options` and `__call__(request, search)`"
        )
    return stage


def _stages_key(entries: Sequence[Mapping[str, Any]] | None) -> tuple[Any, ...]:
    """What identifies a built pipeline: each listed stage's name, version and creation time."""
    return tuple((e.get("name"), e.get("version"), e.get("created")) for e in entries or ())


def _bind(stage: Stage, inner: SearchFn) -> SearchFn:
    return lambda request: stage(request, inner)


def _stages_providing(option: str) -> list[tuple[str, Any]]:
    """(name, factory) of every registered stage that declares ``option``."""
    from tamis import registry

    out = []
    for name in registry.available(registry.STAGES):
        try:
            factory = registry.load(registry.STAGES, name)
        except Exception:  # a broken third-party entry point must not hide the message being built
            continue
        if option in getattr(factory, "options", ()):
            out.append((name, factory))
    return out


class Staging(CollectionBase):
    """The query-time stages of `Collection`, and the Cosine Adapter one of them applies."""

    _built_pipeline: tuple[Any, Pipeline] | None

    def _stage_pipeline(self) -> Pipeline:
        """The stages the manifest lists, built (again only when the list or a stage's version changes)."""
        manifest = self._require()
        key = _stages_key(manifest.get("stages"))
        built = self._built_pipeline
        if built is None or built[0] != key:
            built = self._built_pipeline = (key, Pipeline.from_manifest(manifest, collection=self.name))
        return built[1]

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The collection's query-time stages (`tamis.collection.Stage`), outermost first."""
        return self._stage_pipeline().stages

    def set_stage(self, name: str, settings: Mapping[str, Any] | None = None, *, first: bool = False) -> None:
        """Add the stage ``name`` (registered under ``tamis.stages``) with ``settings``, or give it new settings.

        The stages are built here, so bad settings fail now rather than at the next search, and the
        collection is left as it was. A new stage goes last: it runs innermost, right around the store
        query; with ``first=True`` the stage goes (or moves) first: it runs outermost (a reranker). Settings are stored with the collection (JSON); a re-index starts the new version without
        stages.

        Raises:
            ConfigError: no stage of that name, or settings that are not JSON.

        Example:
            >>> col.set_stage("my-reranker", {"model": "./reranker"})   # doctest: +SKIP
        """
        manifest = self._require()
        settings = json_copy(settings or {}, f"the settings of stage {name!r}")
        entries = stages_with(manifest, name, settings)
        if first:
            entries.sort(key=lambda e: e["name"] != name)
        pipeline = Pipeline.from_manifest(manifest, collection=self.name, entries=entries)
        self._put_stages(entries, pipeline)

    def remove_stage(self, name: str) -> None:
        """Remove the stage ``name`` from the collection (nothing happens when it has none)."""
        manifest = self._require()
        entries = [e for e in manifest.get("stages") or () if e["name"] != name]
        if len(entries) != len(manifest.get("stages") or ()):
            self._put_stages(entries, None)

    def _put_stages(self, entries: list[dict[str, Any]], pipeline: Pipeline | None) -> None:
        """Store ``entries`` as the stage list, and ``pipeline`` (built from them; None: build it at the next
        search) as what searches run; a failed write leaves the manifest and the pipeline as they were."""
        manifest = self._require()
        before = manifest.get("stages")
        manifest["stages"] = entries
        try:
            self._write_manifest()
        except BaseException:
            manifest["stages"] = before
            raise
        self._built_pipeline = None if pipeline is None else (_stages_key(entries), pipeline)

    @property
    def adapter(self) -> Any:
        """The collection's `CosineAdapter`, or None when it is not calibrated."""
        manifest = self._require()
        entry = adapter_entry(manifest)
        if entry is None:
            return None
        from tamis.calibration import CosineAdapter

        return CosineAdapter.from_dict(entry["settings"]["adapter"], fingerprint=manifest["model"]["fingerprint"])

    def set_adapter(self, adapter: Any) -> None:
        """Store ``adapter`` (a fitted `CosineAdapter` with a threshold) with the collection, or remove
        the calibration with ``None``. Searches filter by it from then on, through the stage ``adapter.stage``.

        Raises:
            ModelMismatchError: the adapter was calibrated for another model.
            CalibrationError: the adapter has no threshold yet.
        """
        manifest = self._require()
        if adapter is None:
            entry = adapter_entry(manifest)
            if entry is not None:
                self.remove_stage(entry["name"])
            return
        if adapter.fingerprint != manifest["model"]["fingerprint"]:
            raise ModelMismatchError(
                f"the adapter was calibrated for the model with fingerprint {adapter.fingerprint[:12]}; collection "
                f"{self.name!r} holds vectors of {manifest['model']['name']!r} ({manifest['model']['fingerprint'][:12]}). "
                "Calibrate it on this collection"
            )
        if adapter.threshold is None:
            raise CalibrationError("the adapter has no threshold; call adapter.fit_threshold(...) first")
        self.set_stage(adapter.stage, {"adapter": adapter.to_dict()})

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
        replace: str = "always",
        **overrides: Any,
    ) -> Any:
        """Train a Cosine Adapter on this collection, fit its threshold, and store it with the collection.

        `tamis.calibration.calibrate` on this collection; see there for the arguments.

        Returns:
            the fitted `CosineAdapter`; its ``threshold_report`` and ``extra["training"]`` say how it did.

        Example:
            >>> col.calibrate(queries, qrels, target_recall=0.9)       # doctest: +SKIP
        """
        from tamis.calibration import calibrate

        return calibrate(
            self, queries, qrels, dev_queries, dev_qrels, target_recall=target_recall,  # type: ignore[arg-type]
            target_precision=target_precision, method=method, teacher=teacher, config=config,  # type: ignore[arg-type]
            save=save, replace=replace, **overrides,  # type: ignore[arg-type]
        )
