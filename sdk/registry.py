"""Find stores, query-time stages and encoders by name, through entry points.

Third parties add a store, a stage or an encoder without touching tamis by declaring, in their own
``pyproject.toml``::

    [project.entry-points."tamis.stores"]
    mystore = "my_package.store:MyStore"

    [project.entry-points."tamis.stages"]
    mystage = "my_package.stage:MyStage"

    [project.entry-points."tamis.encoders"]
    myenc = "my_package.encoder:MyEncoder.from_spec"

tamis's built-ins register the same way: the stores ``edge`` and ``qdrant``, the stage
``relevance``, the encoders ``torch``, ``onnx``, ``http`` (an inference server, in
`tamis.adapters.remote`) and ``fake``. `register` adds one at run time (handy in tests and
notebooks); a name registered at run time wins over an entry point of the same name.

What each group holds:

* ``tamis.stores``: a `tamis.stores.VectorStore` class (see `tamis.open_collection`'s ``store=``).
* ``tamis.stages``: a query-time stage class, built with ``from_manifest`` (see `tamis.collection.Stage`).
* ``tamis.encoders``: an encoder factory, called by `tamis.load_encoder` as
  ``factory(spec, device=device, **options)`` and returning a `tamis.encoders.Encoder`:
  ``spec`` is the text after ``"NAME:"`` in ``load_encoder("NAME:spec")``, or the model argument
  (a name or folder, a URL for ``http``; None for the factory's default) when the factory is chosen
  with ``backend="NAME"``; ``device`` is `load_encoder`'s, as given (a factory that runs nothing
  locally ignores it); ``options`` are `load_encoder`'s other keyword arguments, unchanged.
  ``"NAME:spec"`` should load the same encoder (the same fingerprint) wherever it is read again:
  a collection records it as its model's source.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import Any

from tamis._errors import ConfigError

__all__ = ["ENCODERS", "STAGES", "STORES", "available", "load", "register"]

STORES = "tamis.stores"
STAGES = "tamis.stages"
ENCODERS = "tamis.encoders"

#: what one thing of each group is called in messages
_KIND = {STORES: "store", STAGES: "stage", ENCODERS: "encoder"}

_runtime: dict[str, dict[str, Any]] = {group: {} for group in _KIND}


@functools.cache
def _installed(group: str) -> dict[str, Any]:
    """The entry points of ``group`` (read once per process: scanning the installed packages takes ms)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def _group(group: str) -> dict[str, Any]:
    if group not in _runtime:
        raise ConfigError(f"unknown registry group {group!r}; use one of {', '.join(map(repr, _KIND))}")
    return {**_installed(group), **_runtime[group]}


def available(group: str) -> list[str]:
    """Sorted names registered in ``group`` (`STORES`, `STAGES` or `ENCODERS`)."""
    return sorted(_group(group))


def register(group: str, name: str, obj: Any) -> None:
    """Register ``obj`` (a class or factory) under ``name`` for this process."""
    _group(group)  # an unknown group: the error naming the groups
    _runtime[group][name] = obj


def load(group: str, name: str) -> Any:
    """The class or factory registered as ``name`` in ``group``.

    Raises:
        ConfigError: nothing of that name; the message lists what is available.
    """
    found = _group(group)
    if name not in found:
        raise ConfigError(
            f"no {_KIND[group]} named {name!r}; available: {', '.join(sorted(found)) or '(none)'}. "
            f"Install the package that provides it, or register it under the {group!r} entry point."
        )
    obj = found[name]
    if hasattr(obj, "load") and hasattr(obj, "group"):  # an EntryPoint
        obj = obj.load()
    return obj
