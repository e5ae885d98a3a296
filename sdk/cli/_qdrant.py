"""`tamis adopt`, `push`, `pull` and `migrate`: Qdrant in production, thin over `tamis.collection`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tamis._errors import TamisError
from tamis.cli._app import (
    ApiKeyOpt,
    CollectionOpt,
    ModelOpt,
    PathOpt,
    StoreOpt,
    UrlOpt,
    VerboseOpt,
    _fail,
    _progress,
    _setup_logging,
    app,
    out,
)
from tamis.cli._qdrant_options import CLIENT_OPTIONS, store_options


# -- client options (global: tamis --timeout 30 index ...) ------------------------------------------
@app.callback()
def _client_options(
    grpc: Annotated[bool, typer.Option("--grpc", help="Talk gRPC to a Qdrant server.", envvar="TAMIS_QDRANT_GRPC")] = False,
    timeout: Annotated[int | None, typer.Option("--timeout", help="Qdrant request timeout (s).", envvar="TAMIS_QDRANT_TIMEOUT")] = None,
    retries: Annotated[
        int | None, typer.Option("--retries", help="Retries on transient Qdrant errors (503, 429, timeouts; default 4).",
                                 envvar="TAMIS_QDRANT_RETRIES")
    ] = None,
    ca_cert: Annotated[
        Path | None, typer.Option("--ca-cert", help="CA bundle to verify the Qdrant server's TLS certificate (https URLs).",
                                  envvar="TAMIS_QDRANT_CA_CERT")
    ] = None,
    write_ordering: Annotated[
        str | None, typer.Option("--write-ordering", help="weak | medium | strong (replicated servers).")
    ] = None,
) -> None:
    """tamis — a fine sieve for retrieval on Qdrant: index, search, calibrate, train."""
    given = {"prefer_grpc": grpc or None, "timeout": timeout, "retries": retries,
             "verify": None if ca_cert is None else str(ca_cert), "write_ordering": write_ordering}
    CLIENT_OPTIONS.clear()
    CLIENT_OPTIONS.update({k: v for k, v in given.items() if v is not None})


def _store(path: Path | None, url: str | None, api_key: str | None, store: str | None) -> Any:
    from tamis.collection import open_store

    return open_store(store, path=path, url=url, api_key=api_key, options=store_options(url, store))[0]


# -- commands --------------------------------------------------------------------------------------
@app.command()
def adopt(
    name: Annotated[str, typer.Argument(help="The collection (or alias) another tool made.")],
    model: ModelOpt = None,
    text_key: Annotated[str, typer.Option("--text-key", help="Payload key of the text (LlamaIndex: text).")] = "page_content",
    metadata_key: Annotated[str, typer.Option("--metadata-key", help="Payload key of the metadata ('' = whole payload).")] = "metadata",
    id_key: Annotated[str | None, typer.Option("--id-key", help="Dotted payload key of the document id (default: point id).")] = None,
    title_key: Annotated[str | None, typer.Option("--title-key", help="Dotted payload key of a title.")] = None,
    sample: Annotated[int, typer.Option(help="Stored vectors re-encoded to check the model.")] = 32,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    store: StoreOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Bind a collection made by langchain-qdrant / LlamaIndex / qdrant-client to a model (vectors checked)."""
    _setup_logging(verbose)
    from tamis.collection import adopt_collection

    try:
        with adopt_collection(
            name, model=model, text_key=text_key, metadata_key=metadata_key or None, id_key=id_key, title_key=title_key,
            sample=sample, path=path, url=url, api_key=api_key, store=store, store_options=store_options(url, store),
        ) as col:
            out.print(f"[green]adopted[/] [bold]{name}[/]: {col.count():,} points, model {col.manifest['model']['name']}, "
                      f"{col.manifest['adopted']['checked']} sampled vectors match")
    except TamisError as exc:
        _fail(exc)


@app.command()
def migrate(
    collection: CollectionOpt, path: PathOpt = None, url: UrlOpt = None, api_key: ApiKeyOpt = None, store: StoreOpt = None,
) -> None:
    """Rewrite a collection's payloads in the current layout (langchain / LlamaIndex readable), no re-encoding."""
    from tamis.collection import open_collection

    try:
        with open_collection(collection, path=path, url=url, api_key=api_key, store=store,
                             store_options=store_options(url, store)) as col:
            report = col.migrate()
    except TamisError as exc:
        _fail(exc)
        return
    out.print_json(json.dumps(report.to_dict()))


def _copy(name: str, source: Any, target: Any, keep_old: bool, what: str) -> None:
    from tamis.collection import copy_collection

    try:
        with _progress() as bar:
            task = bar.add_task(f"{what} {name}", total=None)
            report = copy_collection(name, source, target, keep_old=keep_old,
                                     progress=lambda d, t: bar.update(task, completed=d, total=t))
    finally:
        source.close()
        target.close()
    out.print_json(json.dumps(report.to_dict()))


KeepOld = Annotated[bool, typer.Option("--keep-old/--delete-old", help="Keep the version the name served there before.")]


@app.command()
def push(
    collection: CollectionOpt,
    url: Annotated[str | None, typer.Option("--url", help="The Qdrant server to push to.", envvar="QDRANT_URL")] = None,
    api_key: ApiKeyOpt = None,
    to_store: Annotated[str | None, typer.Option("--to-store", help="Target store name (default: qdrant).")] = None,
    to_path: Annotated[Path | None, typer.Option("--to-path", help="Target folder (qdrant-client local mode with --to-store qdrant).")] = None,
    path: PathOpt = None,
    store: StoreOpt = None,
    keep_old: KeepOld = True,
    verbose: VerboseOpt = False,
) -> None:
    """Copy an embedded collection (points, manifest, adapter, settings) to a Qdrant server, as a new version."""
    _setup_logging(verbose)
    try:
        source = _store(path, None, None, store)
        target = _store(to_path, url, api_key, to_store or "qdrant")
        _copy(collection, source, target, keep_old, "pushing")
    except TamisError as exc:
        _fail(exc)


@app.command()
def pull(
    collection: CollectionOpt,
    url: Annotated[str | None, typer.Option("--url", help="The Qdrant server to pull from.", envvar="QDRANT_URL")] = None,
    api_key: ApiKeyOpt = None,
    from_store: Annotated[str | None, typer.Option("--from-store", help="Source store name (default: qdrant).")] = None,
    from_path: Annotated[Path | None, typer.Option("--from-path", help="Source folder (local mode with --from-store qdrant).")] = None,
    path: PathOpt = None,
    store: StoreOpt = None,
    keep_old: KeepOld = True,
    verbose: VerboseOpt = False,
) -> None:
    """Copy a server collection into the embedded store (a new version behind its name)."""
    _setup_logging(verbose)
    try:
        source = _store(from_path, url, api_key, from_store or "qdrant")
        target = _store(path, None, None, store)
        _copy(collection, source, target, keep_old, "pulling")
    except TamisError as exc:
        _fail(exc)
