"""Lazy re-exports for a package's ``__init__``: a name's module is imported on first use.

This keeps ``import tamis`` (and ``import tamis.<subpackage>``) cheap: nothing imports torch,
onnxruntime or qdrant until a name that needs it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """(``__getattr__``, ``__dir__``, ``__all__``) for ``package``, exporting ``names``.

    Args:
        package: the package's ``__name__``.
        names: public name -> module defining it, absolute or relative to ``package`` (``"._ingest"``).
    """
    table = dict(names)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(table))

    return __getattr__, __dir__, sorted(table)
