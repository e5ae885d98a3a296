"""`tamis index`, `search`, `list`, `info`, `delete` and `reindex`: a collection's contents, in and out."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tamis._errors import TamisError
from tamis.cli._app import (
    ApiKeyOpt,
    BackendOpt,
    CollectionOpt,
    DeviceOpt,
    EncoderApiKeyOpt,
    EncoderRetriesOpt,
    EncoderTimeoutOpt,
    EncoderUrlOpt,
    ModelOpt,
    PathOpt,
    StoreOpt,
    UrlOpt,
    VerboseOpt,
    _fail,
    _open,
    _print_index_report,
    _progress,
    _setup_logging,
    app,
    encoder_options,
    err,
    out,
)
from tamis.cli._hybrid import FusionOpt, HybridOpt, ModeOpt, NoRerankOpt, search_options
from tamis.cli._qdrant_options import ConfigOpt, IndexFieldOpt, SetOpt, TenantOpt, settings_from_cli
from tamis.cli._ray import ActorsOpt, RayBatchOpt, RayOpt, index_with_ray


# -- index ----------------------------------------------------------------------------------------
@app.command()
def index(
    data: Annotated[Path, typer.Argument(help="A BEIR folder, a .jsonl file, or a folder of .txt/.md files.")],
    collection: CollectionOpt,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    store: StoreOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    format: Annotated[str, typer.Option("--format", help="auto | beir | jsonl | dir.")] = "auto",
    id_field: Annotated[str, typer.Option(help="JSONL: the id field.")] = "_id",
    text_field: Annotated[str, typer.Option(help="JSONL: the text field.")] = "text",
    title_field: Annotated[str, typer.Option(help="JSONL: the title field ('' for none).")] = "title",
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Skip and count invalid records instead of stopping.")] = False,
    max_document_bytes: Annotated[int, typer.Option(help="Largest document accepted (UTF-8 bytes).")] = 1_000_000,
    batch_size: Annotated[int, typer.Option(help="Chunks per write.")] = 512,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    encoder_url: EncoderUrlOpt = None,
    encoder_api_key: EncoderApiKeyOpt = None,
    timeout: EncoderTimeoutOpt = None,
    retries: EncoderRetriesOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    index_field: IndexFieldOpt = None,
    tenant_field: TenantOpt = None,
    verbose: VerboseOpt = False,
    hybrid: HybridOpt = False,
    ray: RayOpt = None,
    actors: ActorsOpt = 1,
    ray_batch_size: RayBatchOpt = 1024,
) -> None:
    """Encode DATA and write it into a collection (idempotent; an interrupted run resumes)."""
    _setup_logging(verbose)
    if ray is not None:  # the same ingest on a Ray cluster (tamis.cli._ray -> tamis.distributed)
        return index_with_ray(**locals())
    from tamis.data import load_data

    on_invalid = "skip" if skip_invalid else "raise"
    try:
        source = load_data(
            data, format=format, on_invalid=on_invalid,  # type: ignore[arg-type]
            **({"id_field": id_field, "text_field": text_field, "title_field": title_field or None} if format in ("jsonl",) or (format == "auto" and data.is_file()) else {}),
        )
        with _open(collection, path=path, url=url, api_key=api_key, store=store, model=model,
                   backend=backend, device=device,
                   encoder_url=encoder_url, encoder_api_key=encoder_api_key,
                   encoder_options=encoder_options(timeout, retries), create=True, hybrid=hybrid,
                   settings=settings_from_cli(config, set_, index_field, tenant_field)) as col, _progress() as bar:
            task = bar.add_task(f"indexing into {collection}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = col.index(
                source, on_invalid=on_invalid, max_document_bytes=max_document_bytes,  # type: ignore[arg-type]
                batch_size=batch_size, progress=progress,
            )
    except TamisError as exc:
        _fail(exc)
        return
    _print_index_report(report, collection, json_out)


# -- search ---------------------------------------------------------------------------------------
@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="The query (or use --queries for a batch).")] = None,
    collection: CollectionOpt = ...,  # type: ignore[assignment]
    k: Annotated[int, typer.Option("-k", "--k", help="Number of documents.")] = 10,
    queries: Annotated[Path | None, typer.Option("--queries", help="Batch mode: a BEIR queries.jsonl (_id, text).")] = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Batch mode: write JSON lines here (default stdout).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
    with_text: Annotated[bool, typer.Option("--with-text/--no-text", help="Batch mode: include text/title/metadata.")] = False,
    filter: Annotated[str | None, typer.Option("--filter", help='Payload filter as JSON, e.g. \'{"lang": "en"}\'.')] = None,
    score_threshold: Annotated[float | None, typer.Option(help="Only hits with cosine >= this.")] = None,
    hnsw_ef: Annotated[int | None, typer.Option(help="HNSW search breadth (default 128).")] = None,
    exact: Annotated[bool, typer.Option("--exact", help="Exact search (no index).")] = False,
    no_filter: Annotated[
        bool, typer.Option("--no-filter", help="Calibrated collections: return the top-k unfiltered (relevance still shown).")
    ] = False,
    min_relevance: Annotated[
        float | None, typer.Option("--min-relevance", help="Calibrated collections: relevance threshold instead of the adapter's.")
    ] = None,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    store: StoreOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    encoder_url: EncoderUrlOpt = None,
    encoder_api_key: EncoderApiKeyOpt = None,
    timeout: EncoderTimeoutOpt = None,
    retries: EncoderRetriesOpt = None,
    verbose: VerboseOpt = False,
    mode: ModeOpt = None,
    fusion: FusionOpt = None,
    no_rerank: NoRerankOpt = False,
) -> None:
    """Search a collection with one query, or a batch of queries (--queries) as JSON lines."""
    _setup_logging(verbose)
    from tamis.data import load_beir_queries

    try:
        if (query is None) == (queries is None):
            from tamis._errors import ConfigError

            raise ConfigError("give either a QUERY argument or --queries FILE (not both, not neither)")
        flt = None
        if filter:
            try:
                flt = json.loads(filter)
            except json.JSONDecodeError as exc:
                from tamis._errors import ConfigError

                raise ConfigError(f"--filter is not valid JSON: {exc.msg}: {filter!r}") from exc
        with _open(collection, path=path, url=url, api_key=api_key, store=store, model=model,
                   backend=backend, device=device,
                   encoder_url=encoder_url, encoder_api_key=encoder_api_key,
                   encoder_options=encoder_options(timeout, retries)) as col:
            opts = dict(filter=flt, score_threshold=score_threshold, hnsw_ef=hnsw_ef, exact=exact,
                        relevance_filter=not no_filter, min_relevance=min_relevance, **search_options(mode, fusion, no_rerank))
            if query is not None:
                hits = col.search(query, k, **opts)
                if json_out:
                    out.print_json(json.dumps({"query": query, "hits": [h.to_dict() for h in hits]}))
                else:
                    _print_hits(query, hits)
                return
            assert queries is not None
            qs = load_beir_queries(queries)
            ids, texts = list(qs), list(qs.values())
            sink = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
            try:
                with _progress() as bar:
                    task = bar.add_task("searching", total=len(texts))
                    step = 256
                    for start in range(0, len(texts), step):
                        results = col.search_batch(texts[start : start + step], k, **opts)
                        for qid, hits in zip(ids[start : start + step], results, strict=True):
                            sink.write(json.dumps({"query_id": qid, "hits": [h.to_dict(with_text=with_text) for h in hits]}) + "\n")
                        bar.update(task, advance=len(results))
            finally:
                if output:
                    sink.close()
                else:
                    sink.flush()
    except TamisError as exc:
        _fail(exc)


def _print_hits(query: str, hits: list[Any]) -> None:
    out.print(f"[bold]{query}[/]")
    if not hits:
        out.print("  [yellow]nothing relevant[/]")
        return
    relevance = any(h.relevance is not None for h in hits)
    # rank, score, relevance and id never shrink; the text takes what is left and wraps (its first 160 characters)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=False)
    table.add_column("#", justify="right", no_wrap=True, min_width=len(str(len(hits))))
    table.add_column("score", justify="right", no_wrap=True, min_width=5)
    if relevance:
        table.add_column("relevance", justify="right", no_wrap=True, min_width=4)
    longest = max(len(h.id) for h in hits)
    table.add_column("id", overflow="fold", min_width=min(longest, 24), max_width=40)
    table.add_column("text", overflow="fold", ratio=1, min_width=10)
    for rank, h in enumerate(hits, 1):
        row = [str(rank), f"{h.score:.3f}"]
        if relevance:
            row.append("" if h.relevance is None else f"{h.relevance:.2f}")
        text = " ".join((h.text or "").split())
        row += [h.id, text[:160] + ("…" if len(text) > 160 else "")]
        table.add_row(*row)
    out.print(table)


# -- collections --------------------------------------------------------------------------------
@app.command("list")
def list_collections(
    path: PathOpt = None, url: UrlOpt = None, api_key: ApiKeyOpt = None, store: StoreOpt = None,
    long: Annotated[bool, typer.Option("--long", "-l", help="Show the version each name serves.")] = False,
) -> None:
    """List the collections in a store, by name (a re-indexed collection's versions are not listed apart)."""
    from tamis.collection import list_collections as collection_names
    from tamis.collection import open_store

    try:
        st, _ = open_store(store, path=path, url=url, api_key=api_key, location=None)
        try:
            names = collection_names(st)
        finally:
            st.close()
        if long:
            table = Table("collection", "version")
            for name, physical in names:
                table.add_row(name, physical)
            out.print(table)
        else:
            for name, _ in names:
                out.print(name, highlight=False)
    except TamisError as exc:
        _fail(exc)


@app.command()
def info(collection: CollectionOpt, path: PathOpt = None, url: UrlOpt = None, api_key: ApiKeyOpt = None, store: StoreOpt = None) -> None:
    """Show a collection's model, size and state as JSON."""
    try:
        with _open(collection, path=path, url=url, api_key=api_key, store=store, model=None, backend="auto", device="auto") as col:
            shown = col.info()
            out.print_json(json.dumps(shown, default=str))
            if shown["ingest"].get("state") == "damaged":
                err.print(f"[bold red]damaged:[/] {shown['ingest']['problem']}", highlight=False)
    except TamisError as exc:
        _fail(exc)


@app.command()
def delete(
    collection: CollectionOpt, path: PathOpt = None, url: UrlOpt = None, api_key: ApiKeyOpt = None, store: StoreOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a collection: its name and every version of it, with all their points."""
    try:
        with _open(collection, path=path, url=url, api_key=api_key, store=store, model=None, backend="auto", device="auto") as col:
            if not yes and not typer.confirm(f"delete collection {collection!r} ({col.count():,} points)?"):
                raise typer.Exit(1)
            col.delete()
            out.print(f"deleted {collection}")
    except TamisError as exc:
        _fail(exc)


# -- reindex --------------------------------------------------------------------------------------
@app.command()
def reindex(
    collection: CollectionOpt,
    model: Annotated[str, typer.Option("--model", "-m", help="The new model (name or folder).")],
    data: Annotated[Path | None, typer.Argument(help="The documents (default: re-read from the collection, if unchunked).")] = None,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Keep the previous version's collection.")] = False,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    store: StoreOpt = None,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    index_field: IndexFieldOpt = None,
    tenant_field: TenantOpt = None,
    verbose: VerboseOpt = False,
    hybrid: HybridOpt = False,
) -> None:
    """Re-index a collection with a new model: built next to the old version, switched atomically when complete.

    With --hybrid the new version stores BM25 sparse vectors too (upgrading a dense collection)."""
    _setup_logging(verbose)
    try:
        source = None
        if data is not None:
            from tamis.data import load_data

            source = load_data(data)
        with _open(collection, path=path, url=url, api_key=api_key, store=store, model=None,
                   backend=backend, device=device) as col, _progress() as bar:
            old = col.physical
            task = bar.add_task(f"re-indexing {collection}", total=None)
            report = col.reindex(
                source, model=model, keep_old=keep_old, hybrid=True if hybrid else None,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                settings=settings_from_cli(config, set_, index_field, tenant_field),
            )
    except TamisError as exc:
        _fail(exc)
        return
    out.print(
        f"[green]re-indexed[/] {collection}: {report.documents:,} documents with {model}, now served by "
        f"{col.physical} (was {old}); calibrate again if it was calibrated", highlight=False,
    )
