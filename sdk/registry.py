"""Find stores and query-time stages by name, through entry points.

Third parties add a store or a stage without touching tamis by declaring, in their own
``pyproject.toml``::

    [project.entry-points."tamis.stores"]
    mystore = "my_package.store:MyStore"

    [project.entry-points."tamis.stages"]
    mystage = "my_package.stage:MyStage"

tamis's built-ins register the same way. `register_store` / `register_stage` add one at run time
(handy in tests and notebooks).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from tamis._errors import ConfigError

__all__ = ["available", "load", "register", "STORES", "STAGES"]

STORES = "tamis.stores"
STAGES = "tamis.stages"

_runtime: dict[str, dict[str, Any]] = {STORES: {}, STAGES: {}}


def _group(group: str) -> dict[str, Any]:
    if group not in _runtime:
        raise ConfigError(f"unknown registry group {group!r}; use {STORES!r} or {STAGES!r}")
    found: dict[str, Any] = {ep.name: ep for ep in entry_points(group=group)}
    found.update(_runtime[group])
    return found


def available(group: str) -> list[str]:
    """Sorted names registered in ``group`` (``"tamis.stores"`` or ``"tamis.stages"``)."""
    return sorted(_group(group))


def register(group: str, name: str, obj: Any) -> None:
    """Register ``obj`` (a class or factory) under ``name`` for this process."""
    _group(group)
    _runtime[group][name] = obj


def load(group: str, name: str) -> Any:
    """The class or factory registered as ``name`` in ``group``.

    Raises:
        ConfigError: nothing of that name; the message lists what is available.
    """
    found = _group(group)
    if name not in found:
        kind = "store" if group == STORES else "stage"
        raise ConfigError(
            f"no {kind} named {name!r}; available: {', '.join(sorted(found)) or '(none)'}. "
            f"Install the package that provides it, or register it under the {group!r} entry point."
        )
    obj = found[name]
    if hasattr(obj, "load") and hasattr(obj, "group"):  # an EntryPoint
        obj = obj.load()
    return obj
