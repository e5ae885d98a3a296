"""Opening a ``QdrantClient`` for `QdrantClientStore`, and recognising the errors it raises."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from qdrant_client import QdrantClient, models

from tamis._errors import CollectionNotFoundError, ConfigError, DimensionMismatchError, StoreError

__all__ = [
    "Connection",
    "alias_operations",
    "connect",
    "is_conflict",
    "is_not_found",
    "mapping_filter",
    "store_error",
    "write_ordering_of",
]


@dataclass(frozen=True)
class Connection:
    """An opened client: whether the store owns it, whether it is local mode, where it points."""

    client: QdrantClient
    owned: bool
    local: bool
    where: str


def connect(
    location: str | None,
    *,
    url: str | None,
    api_key: str | None,
    path: str | os.PathLike[str] | None,
    prefer_grpc: bool,
    timeout: int | None,
    client: QdrantClient | None,
    client_kwargs: dict[str, Any],
) -> Connection:
    """Check the `QdrantClientStore` connection arguments and open (or adopt) the client."""
    given = [n for n, v in (("location", location), ("url", url), ("path", path)) if v is not None]
    if client is not None:
        extra = given + [n for n, v in (("api_key", api_key), ("timeout", timeout)) if v is not None]
        extra += sorted(client_kwargs) + (["prefer_grpc"] if prefer_grpc else [])
        if extra:
            raise ConfigError(
                f"client= was given together with {extra}; configure the QdrantClient yourself, "
                f"or pass connection arguments without client="
            )
        if not isinstance(client, QdrantClient):
            raise ConfigError(f"client must be a qdrant_client.QdrantClient, got {type(client).__name__}")
        options = client.init_options
        where = (
            ":memory:"
            if options.get("location") == ":memory:"
            else str(
                options.get("path") or options.get("url") or options.get("location") or options.get("host")
            )
        )
        local = options.get("location") == ":memory:" or options.get("path") is not None
        return Connection(client, False, local, where)
    if len(given) != 1:
        raise ConfigError(
            f"give exactly one of location (':memory:' or a URL), url= or path=; got "
            f"{given or 'none'}. Examples: QdrantClientStore(':memory:'), "
            f"QdrantClientStore(path='./qdrant'), QdrantClientStore(url='http://localhost:6333')"
        )
    local = location == ":memory:" or path is not None
    if local and api_key is not None:
        raise ConfigError("api_key= applies to a server url=; local mode (':memory:' / path=) takes none")
    where = str(location or url or path)
    try:
        opened = QdrantClient(
            location=location,
            url=url,
            api_key=api_key,
            path=None if path is None else os.fspath(path),
            prefer_grpc=prefer_grpc,
            timeout=timeout,
            **client_kwargs,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise StoreError(
            f"cannot open Qdrant at {where!r}: {exc}"
            + ("; close the other client using this folder first" if "already accessed" in str(exc) else "")
        ) from exc
    return Connection(opened, True, local, where)


def is_not_found(exc: Exception) -> bool:
    """True if the client says the collection does not exist (REST, gRPC or local mode)."""
    if getattr(exc, "status_code", None) == 404:  # REST: UnexpectedResponse
        return True
    code = getattr(exc, "code", None)  # gRPC: RpcError
    if callable(code):
        with contextlib.suppress(Exception):
            return getattr(code(), "name", "") == "NOT_FOUND"
    return isinstance(exc, ValueError) and "not found" in str(exc).lower()  # local mode


def is_conflict(exc: Exception) -> bool:
    """True if the client says the collection exists already."""
    if getattr(exc, "status_code", None) == 409:
        return True
    return "already exists" in str(exc).lower()


def store_error(exc: Exception, op: str, name: str | None, where: str) -> StoreError:
    """The tamis error for ``exc``, raised by the client while doing ``op`` on collection ``name``."""
    text = str(exc)
    if name is not None and is_not_found(exc):
        return CollectionNotFoundError(
            f"no collection or alias named {name!r} in Qdrant at {where!r}; create it first or check the name"
        )
    if "dimension error" in text.lower():
        return DimensionMismatchError(f"collection {name!r} in {where!r}: {text}")
    target = f" {name!r}" if name is not None else ""
    return StoreError(f"Qdrant at {where!r} failed to {op}{target}: {text}")


def mapping_filter(conditions: list[tuple[str, str, Any]]) -> models.Filter:
    """The ``models.Filter`` of parsed mapping conditions (`tamis.stores.mapping_conditions`; all must hold)."""
    must: list[Any] = []
    for key, kind, value in conditions:
        if kind == "range":
            must.append(models.FieldCondition(key=key, range=models.Range(**value)))
        elif kind == "any":
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=value)))
        else:
            must.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
    return models.Filter(must=must)


def alias_operations(alias: str, target: str | None, *, replace: bool) -> list[Any]:
    """The operations of one all-or-nothing alias update: delete ``alias`` (if ``replace``), then point it
    at ``target`` (unless None)."""
    ops: list[Any] = []
    if replace:
        ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
    if target is not None:
        create = models.CreateAlias(collection_name=target, alias_name=alias)
        ops.append(models.CreateAliasOperation(create_alias=create))
    return ops


def write_ordering_of(value: str | None) -> models.WriteOrdering | None:
    """``"weak"`` / ``"medium"`` / ``"strong"`` as the client's write ordering (None: the server's default)."""
    if value not in (None, "weak", "medium", "strong"):
        raise ConfigError(f"write_ordering must be 'weak', 'medium' or 'strong', got {value!r}")
    return None if value is None else models.WriteOrdering(value)
