"""The options tamis's Qdrant features share: the collection settings of ``index`` / ``reindex``
(``--config``, ``--set``, ``--index-field``, ``--tenant-field``) and the global Qdrant client options
(``tamis --timeout 30 --retries 8 --ca-cert ca.pem index ...``, set by the app's callback in `_qdrant`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

# -- the settings options of index / reindex ------------------------------------------------------
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Collection settings file (.json / .toml): quantization, indexes, shards...")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="A collection setting KEY=VALUE, e.g. quantization.type=scalar, shard_number=2 (repeat)."),
]
IndexFieldOpt = Annotated[
    list[str] | None, typer.Option("--index-field", help="A payload index KEY:TYPE, e.g. metadata.lang:keyword (repeat).")
]
TenantOpt = Annotated[str | None, typer.Option("--tenant-field", help="A keyword field indexed with is_tenant=True.")]


def settings_from_cli(
    config: Path | None, sets: list[str] | None, index_fields: list[str] | None, tenant_field: str | None
) -> Any:
    """The `CollectionSettings` the settings options name, or None when none is given."""
    if config is None and not sets and not index_fields and tenant_field is None:
        return None
    from tamis.stores import CollectionSettings

    base = CollectionSettings.from_file(config).to_dict() if config is not None else {}
    if index_fields:
        base["payload_indexes"] = [*base.get("payload_indexes", []), *index_fields]
    if tenant_field is not None:
        base["tenant_field"] = tenant_field
    return CollectionSettings.from_strings(sets or [], base=base)


# -- client options (global: tamis --timeout 30 index ...) ------------------------------------------
#: keyword arguments for a qdrant-client store, set by the global options
CLIENT_OPTIONS: dict[str, Any] = {}


def store_options(url: str | None, store: str | None) -> dict[str, Any] | None:
    """The client options for a qdrant-client store (None for the embedded one)."""
    return dict(CLIENT_OPTIONS) if CLIENT_OPTIONS and (url is not None or store == "qdrant") else None
