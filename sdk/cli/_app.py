"""The ``tamis`` command line: a thin layer over the SDK (typer + rich)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tamis._errors import TamisError

app = typer.Typer(
    name="tamis",
    help="tamis — a fine sieve for retrieval on Qdrant: index, search, calibrate, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True)
logger = logging.getLogger("tamis")

# -- shared options -----------------------------------------------------------------------------
CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
PathOpt = Annotated[
    Path | None, typer.Option("--path", help="Data directory of the embedded store (default: $TAMIS_HOME or ~/.tamis).")
]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Qdrant server URL (uses qdrant-client).", envvar="QDRANT_URL")]
ApiKeyOpt = Annotated[
    str | None, typer.Option("--api-key", help="Qdrant API key (better: set QDRANT_API_KEY).", envvar="QDRANT_API_KEY", show_envvar=True)
]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Store name: edge (default), qdrant, or a plugin's.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Model name or folder (default: the collection's, or all-MiniLM-L6-v2).")
]
BackendOpt = Annotated[str, typer.Option("--backend", help="auto | torch | onnx (auto: torch on GPU, ONNX Runtime on CPU).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")]
EncoderUrlOpt = Annotated[
    str | None,
    typer.Option("--encoder-url", help="Embed with an inference server (TEI, OpenAI-compatible, tamis serve) instead of a local model.",
                 envvar="TAMIS_ENCODER_URL"),
]
EncoderApiKeyOpt = Annotated[
    str | None,
    typer.Option("--encoder-api-key", help="The inference server's API key (better: set TAMIS_ENCODER_API_KEY).",
                 envvar="TAMIS_ENCODER_API_KEY", show_envvar=True),
]


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=err, show_time=False, show_path=False)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _open(
    name: str, *, path: Path | None, url: str | None, api_key: str | None, store: str | None,
    model: str | None, backend: str, device: str, create: bool = False,
    encoder_url: str | None = None, encoder_api_key: str | None = None,
) -> Any:
    from tamis.collection import open_collection

    return open_collection(
        name, path=path, url=url, api_key=api_key, store=store, model=model, backend=backend, device=device, create=create,
        encoder_url=encoder_url, encoder_api_key=encoder_api_key if encoder_url else None,
    )


def _fail(exc: BaseException) -> None:
    err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False, markup=True)
    raise typer.Exit(code=2)


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False,
    )


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
    verbose: VerboseOpt = False,
) -> None:
    """Encode DATA and write it into a collection (idempotent; an interrupted run resumes)."""
    _setup_logging(verbose)
    from tamis.data import load_data

    on_invalid = "skip" if skip_invalid else "raise"
    try:
        source = load_data(
            data, format=format, on_invalid=on_invalid,  # type: ignore[arg-type]
            **({"id_field": id_field, "text_field": text_field, "title_field": title_field or None} if format in ("jsonl",) or (format == "auto" and data.is_file()) else {}),
        )
        with _open(collection, path=path, url=url, api_key=api_key, store=store, model=model,
                   backend=backend, device=device,
                   encoder_url=encoder_url, encoder_api_key=encoder_api_key, create=True) as col, _progress() as bar:
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
    if json_out:
        out.print_json(json.dumps(report.to_dict()))
        return
    rate = report.encoded / report.seconds if report.seconds else 0.0
    out.print(
        f"[green]indexed[/] {report.documents:,} documents ({report.chunks:,} chunks) into [bold]{collection}[/]: "
        f"{report.encoded:,} encoded ({rate:,.0f}/s), {report.unchanged:,} unchanged, "
        f"{report.points:,} points in all, {report.seconds:.1f}s"
    )
    if report.skipped:
        out.print(f"[yellow]skipped[/] {sum(report.skipped.values()):,} invalid records: {report.skipped}")


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
    verbose: VerboseOpt = False,
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
                   encoder_url=encoder_url, encoder_api_key=encoder_api_key) as col:
            opts = dict(filter=flt, score_threshold=score_threshold, hnsw_ef=hnsw_ef, exact=exact,
                        relevance_filter=not no_filter, min_relevance=min_relevance)
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
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    if any(h.relevance is not None for h in hits):
        table.add_column("relevance", justify="right")
    table.add_column("id", overflow="fold", max_width=40)
    table.add_column("text", overflow="ellipsis", no_wrap=True, max_width=80)
    for rank, h in enumerate(hits, 1):
        row = [str(rank), f"{h.score:.3f}"]
        if any(x.relevance is not None for x in hits):
            row.append("" if h.relevance is None else f"{h.relevance:.2f}")
        text = " ".join((h.text or "").split())
        row += [h.id, text]
        table.add_row(*row)
    out.print(table)


# -- collections --------------------------------------------------------------------------------
@app.command("list")
def list_collections(
    path: PathOpt = None, url: UrlOpt = None, api_key: ApiKeyOpt = None, store: StoreOpt = None,
    long: Annotated[bool, typer.Option("--long", "-l", help="Show the version each name serves.")] = False,
) -> None:
    """List the collections in a store, by name (a re-indexed collection's versions are not listed apart)."""
    from tamis.collection._collection import _list_names, _open_store

    try:
        st, _ = _open_store(store, path=path, url=url, api_key=api_key, location=None)
        try:
            names = _list_names(st)
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
            out.print_json(json.dumps(col.info(), default=str))
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


# -- calibrate / eval -----------------------------------------------------------------------------
def _features(features: str) -> dict[str, bool]:
    from tamis._errors import ConfigError

    choices = {"scores": (False, True), "embedding": (True, False), "both": (True, True)}
    if features not in choices:
        raise ConfigError(f"--features must be one of {', '.join(choices)}, got {features!r}")
    emb, sc = choices[features]
    return {"use_embedding": emb, "use_score_features": sc}


@app.command()
def calibrate(
    collection: CollectionOpt,
    data: Annotated[Path, typer.Option("--data", help="A BEIR folder: queries.jsonl and qrels/<split>.tsv.")],
    split: Annotated[str, typer.Option("--split", help="qrels split to train on.")] = "train",
    dev_split: Annotated[
        str | None, typer.Option("--dev-split", help="qrels split for early stopping and the threshold (default: 10% of --split).")
    ] = None,
    target_recall: Annotated[float | None, typer.Option("--target-recall", help="Threshold for this recall on the dev queries (default 0.9).")] = None,
    target_precision: Annotated[float | None, typer.Option("--target-precision", help="Threshold for this precision instead.")] = None,
    conformal: Annotated[bool, typer.Option("--conformal", help="Conformal risk control: a recall guarantee on new queries.")] = False,
    g: Annotated[str, typer.Option("--g", help="Cosine map: linear | sqrt | square | power.")] = "linear",
    features: Annotated[str, typer.Option("--features", help="Adapter inputs: scores | embedding | both.")] = "scores",
    score_list: Annotated[
        str, typer.Option("--score-list", help="Score-list features: summary (top-1, gap, mean, std, ...) | full (also every window score).")
    ] = "summary",
    candidates: Annotated[int, typer.Option("--candidates", help="K: candidates per training query.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Training seed.")] = 0,
    save: Annotated[Path | None, typer.Option("--save", help="Also write the adapter (safetensors + JSON) to this folder.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    store: StoreOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    encoder_url: EncoderUrlOpt = None,
    encoder_api_key: EncoderApiKeyOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Train a Cosine Adapter on a collection from BEIR qrels and store it with the collection.

    Searches on the collection then return only documents whose calibrated relevance reaches
    the threshold (use --no-filter to see the plain top-k).
    """
    _setup_logging(verbose)
    from tamis.data import load_beir_queries, load_qrels

    try:
        cfg = {"g": g, "candidates": candidates, "seed": seed, "score_list": score_list, **_features(features)}
        queries = load_beir_queries(data)
        qrels = load_qrels(data, split)
        dev_q = dev_r = None
        if dev_split is not None:
            dev_r = load_qrels(data, dev_split)
            dev_q = {q: t for q, t in queries.items() if q in dev_r}
        with _open(collection, path=path, url=url, api_key=api_key, store=store, model=model,
                   backend=backend, device=device,
                   encoder_url=encoder_url, encoder_api_key=encoder_api_key) as col:
            with err.status(f"calibrating {collection} on {split} ..."):
                adapter = col.calibrate(
                    {q: t for q, t in queries.items() if q in qrels}, qrels, dev_q, dev_r,
                    target_recall=target_recall, target_precision=target_precision,
                    method="conformal" if conformal else "empirical", config=cfg,
                )
            if save is not None:
                adapter.save(save)
    except TamisError as exc:
        _fail(exc)
        return
    report = {"collection": collection, "adapter": repr(adapter), "threshold": adapter.threshold_report,
              "training": adapter.extra.get("training"), "saved": None if save is None else str(save)}
    if json_out:
        out.print_json(json.dumps(report, default=str))
        return
    t, tr = adapter.threshold_report, adapter.extra.get("training", {})
    out.print(
        f"[green]calibrated[/] [bold]{collection}[/]: {adapter!r}\n"
        f"  trained on {tr.get('queries', 0):,} queries ({tr.get('pairs', 0):,} pairs) in {tr.get('seconds', 0):.1f}s, "
        f"best epoch {tr.get('best_epoch')} of {tr.get('epochs')}\n"
        f"  threshold τ={t['threshold']:.4f} ({t['method']}) on {t['queries']:,} dev queries: "
        f"precision {t['precision']:.3f}, recall {t['recall']:.3f}, F1 {t['f1']:.3f}, "
        f"{t.get('kept_per_query', 0):.1f} documents kept per query, {t['empty_share']:.1%} answered empty"
        + (f"\n  saved to {save}" if save else ""),
        highlight=False,
    )


@app.command("eval")
def eval_(
    data: Annotated[Path, typer.Option("--data", help="A BEIR folder: queries.jsonl and qrels/<split>.tsv.")],
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Collection to evaluate.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Or: a model (folder or name) to evaluate by exact search over DATA's corpus, no collection.")] = None,
    split: Annotated[str, typer.Option("--split", help="qrels split to evaluate on.")] = "test",
    k: Annotated[int, typer.Option("-k", "--k", help="Candidates per query (top-K).")] = 100,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG of the pooled PR curves (default: tamis-eval-<collection>-<split>.png).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    store: StoreOpt = None,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """Evaluate a collection on BEIR qrels: nDCG@10, recall@10/100, MRR@10, and relevance filtering
    (the Cosine Adapter against a global cosine threshold, global Platt scaling and per-query z-scores)."""
    _setup_logging(verbose)
    from tamis.data import load_beir_queries, load_qrels

    if model is not None:
        _eval_model(model, data, split=split, collection=collection, device=device, json_out=json_out)
        return
    try:
        if collection is None:
            from tamis._errors import ConfigError

            raise ConfigError("give --collection NAME (the collection to evaluate), or --model DIR (a model, exact search)")
        qrels = load_qrels(data, split)
        queries = {q: t for q, t in load_beir_queries(data).items() if q in qrels}
        from tamis.evaluation import evaluate_collection

        with _open(collection, path=path, url=url, api_key=api_key, store=store, model=None,
                   backend=backend, device=device) as col:
            calibrated = col.adapter is not None
            png = plot or (Path(f"tamis-eval-{collection}-{split}.png") if calibrated else None)
            with err.status(f"evaluating {collection} on {len(queries):,} {split} queries ..."):
                result = evaluate_collection(col, queries, qrels, k=k, plot=png)
    except TamisError as exc:
        _fail(exc)
        return
    result = {"collection": collection, "split": split, **result}
    if json_out:
        out.print_json(json.dumps(result, default=str))
        return
    r = result["ranking"]
    out.print(
        f"[bold]{collection}[/] on {split} ({result['queries']:,} queries): "
        + ", ".join(f"{name} {r[name]:.4f}" for name in ("nDCG@10", "Recall@10", "Recall@100", "MRR@10")),
        highlight=False,
    )
    if not result["filtering"]:
        out.print("[yellow]not calibrated[/]: run `tamis calibrate` for relevance-filtering metrics")
        return
    table = Table(title=f"relevance filtering over the top-{k} candidates", header_style="bold", box=None)
    cols = [("pr_auc", "PR-AUC"), ("p_at_r50", "P@R=0.5"), ("threshold", "τ"), ("precision", "P@τ"),
            ("recall", "R@τ"), ("f1", "F1@τ"), ("empty_share", "empty"), ("ece", "ECE")]
    table.add_column("method")
    for _, title in cols:
        table.add_column(title, justify="right")
    for method, row in result["filtering"].items():
        table.add_row(method, *("" if key not in row else f"{row[key]:.4f}" for key, _ in cols))
    out.print(table)
    if result.get("plot"):
        out.print(f"PR curves: {result['plot']}")


def _eval_model(model: str, data: Path, *, split: str, collection: str | None, device: str, json_out: bool) -> None:
    """`tamis eval --model`: exact search of DATA's corpus with a model folder (no collection)."""
    from tamis._errors import ConfigError

    try:
        if collection is not None:
            raise ConfigError("give --collection or --model, not both")
        from tamis.evaluation import evaluate_model

        with err.status(f"encoding the corpus of {data} with {model} ..."):
            metrics = evaluate_model(model, data, split=split, device=device)
    except TamisError as exc:
        _fail(exc)
        return
    result = {"model": model, "split": split, "queries": metrics.pop("queries", None), "ranking": metrics}
    if json_out:
        out.print_json(json.dumps(result, default=str))
        return
    out.print(
        f"[bold]{model}[/] on {split} ({result['queries']:,} queries, exact search): "
        + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()),
        highlight=False,
    )


# -- train / distil / reindex (issue 4) ------------------------------------------------------------
def _print_train_result(result: Any, json_out: bool) -> None:
    if json_out:
        out.print_json(json.dumps(result.to_dict(), default=str))
        return
    out.print(
        f"[green]saved[/] {result.kind} ({result.method}) to [bold]{result.path}[/]: {result.examples:,} examples, "
        f"{result.steps:,} steps, {result.seconds / 60:.1f} min"
        + (f", resumed from {Path(result.resumed_from).name}" if result.resumed_from else ""),
        highlight=False,
    )
    if result.teacher_pairs_computed or result.teacher_pairs_reused:
        out.print(f"teacher scores: {result.teacher_pairs_computed:,} computed, {result.teacher_pairs_reused:,} from the cache")
    if result.dev_after:
        table = Table(title="dev metrics", header_style="bold", box=None)
        for col in ("metric", "before", "after"):
            table.add_column(col, justify="right" if col != "metric" else "left")
        for key, after in result.dev_after.items():
            if key == "queries":
                continue
            before = result.dev_before.get(key)
            table.add_row(key, "" if before is None else f"{before:.4f}", f"{after:.4f}")
        out.print(table)


def _stdout_for_json(json_out: bool) -> Any:
    """With --json, the trainer's own log lines go to stderr so stdout holds only the JSON."""
    import contextlib

    return contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()


TrainOut = Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (new, empty, or an older tamis model).")]
EpochsOpt = Annotated[float | None, typer.Option("--epochs", help="Passes over the training data.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Examples per optimiser step.")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed.")]
MaxQueriesOpt = Annotated[int | None, typer.Option("--max-train-queries", help="Use a seeded sample of this many train queries.")]
MaxMinutesOpt = Annotated[float | None, typer.Option("--max-minutes", help="Stop training after this many minutes (the model is saved).")]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many optimiser steps.")]
PrecisionOpt = Annotated[str | None, typer.Option("--precision", help="auto | fp32 | fp16 | bf16 (auto: bf16/fp16 on CUDA).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
GroupOpt = Annotated[bool, typer.Option(
    "--group-by-length/--random-batches",
    help="Batch examples of similar length (less padding, faster) or plain random batches.",
)]


@app.command("train-reranker")
def train_reranker_cmd(
    data: Annotated[Path, typer.Argument(help="A BEIR folder with qrels/train.tsv.")],
    out_dir: TrainOut,
    base: Annotated[str | None, typer.Option("--base", help="Encoder checkpoint to start from (default: all-MiniLM-L6-v2 + a fresh head).")] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="bce | listwise.")] = None,
    miner: Annotated[str | None, typer.Option("--miner", help="Bi-encoder that mines hard negatives (default: all-MiniLM-L6-v2).")] = None,
    num_negatives: Annotated[int | None, typer.Option("--num-negatives", help="Hard negatives per query.")] = None,
    random_negatives: Annotated[int | None, typer.Option("--random-negatives", help="Random negatives per query.")] = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    seed: SeedOpt = None,
    max_train_queries: MaxQueriesOpt = None,
    max_minutes: MaxMinutesOpt = None,
    max_steps: MaxStepsOpt = None,
    precision: PrecisionOpt = None,
    group_by_length: GroupOpt = True,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Train a cross-encoder (a teacher for `tamis train --method distill|augmented`) on DATA's train qrels."""
    _setup_logging(verbose)
    from tamis.training import train_reranker
    from tamis.training._config import RerankerConfig, config_from

    try:
        cfg = config_from(
            RerankerConfig, base=base, loss=loss, miner=miner, num_negatives=num_negatives,
            random_negatives=random_negatives, epochs=epochs,
            batch_size=batch_size, learning_rate=lr, seed=seed, max_train_queries=max_train_queries,
            max_minutes=max_minutes, max_steps=max_steps, precision=precision, device=device,
            group_by_length=group_by_length,
        )
        with _stdout_for_json(json_out):
            result = train_reranker(data, out_dir, cfg)
    except TamisError as exc:
        _fail(exc)
        return
    _print_train_result(result, json_out)


@app.command("train")
def train_cmd(
    data: Annotated[Path, typer.Argument(help="A BEIR folder with qrels/train.tsv (and dev.tsv for the model card).")],
    out_dir: TrainOut,
    method: Annotated[str, typer.Option("--method", help="contrastive | distill | augmented.")] = "contrastive",
    teacher: Annotated[str | None, typer.Option("--teacher", help="Cross-encoder folder (needed by distill and augmented).")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Bi-encoder to start from (default: all-MiniLM-L6-v2).")] = None,
    distill_loss: Annotated[str | None, typer.Option("--distill-loss", help="listwise (CADET KL) | margin_mse.")] = None,
    candidates: Annotated[int | None, typer.Option("--candidates", help="distill: documents per candidate list.")] = None,
    infonce_weight: Annotated[float | None, typer.Option(
        "--infonce-weight", help="distill (listwise): weight of the InfoNCE term on the gold pairs (CADET: 0.1).")] = None,
    num_negatives: Annotated[int | None, typer.Option("--num-negatives", help="contrastive: hard negatives per query.")] = None,
    mini_batch_size: Annotated[int | None, typer.Option("--mini-batch-size", help="Use CachedMNRL with this mini-batch.")] = None,
    directions: Annotated[str | None, typer.Option(
        "--directions", help="Contrastive softmax directions, comma-separated from query_to_doc, doc_to_query, "
        "query_to_query, doc_to_doc; 'all' for the four (GTE's improved contrastive loss).")] = None,
    skip_top: Annotated[int | None, typer.Option("--skip-top", help="False-negative guard without a teacher: skip these top ranks.")] = None,
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters (merged into the saved model).")] = False,
    matryoshka: Annotated[str | None, typer.Option("--matryoshka", help="Matryoshka dimensions, e.g. 384,256,128,64.")] = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    seed: SeedOpt = None,
    max_train_queries: MaxQueriesOpt = None,
    max_minutes: MaxMinutesOpt = None,
    max_steps: MaxStepsOpt = None,
    precision: PrecisionOpt = None,
    group_by_length: GroupOpt = True,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Fine-tune a bi-encoder on DATA: contrastive, distill (from a teacher) or augmented (Augmented SBERT)."""
    _setup_logging(verbose)
    from tamis._errors import ConfigError
    from tamis.training import train_bi_encoder
    from tamis.training._config import Direction, TrainConfig, config_from

    try:
        dims = None
        if matryoshka:
            try:
                dims = tuple(int(x) for x in matryoshka.split(",") if x.strip())
            except ValueError as exc:
                raise ConfigError(f"--matryoshka takes comma-separated integers, got {matryoshka!r}") from exc
        dirs = None
        if directions:
            dirs = (get_args(Direction) if directions.strip() == "all"
                    else tuple(x.strip() for x in directions.split(",") if x.strip()))
        cfg = config_from(
            TrainConfig, method=method, teacher=teacher, base=base, distill_loss=distill_loss, candidates=candidates,
            infonce_weight=infonce_weight,
            num_negatives=num_negatives, mini_batch_size=mini_batch_size, skip_top=skip_top, lora=lora,
            matryoshka_dims=dims, directions=dirs, epochs=epochs, batch_size=batch_size, learning_rate=lr, seed=seed,
            max_train_queries=max_train_queries, max_minutes=max_minutes, max_steps=max_steps,
            precision=precision, device=device, group_by_length=group_by_length,
        )
        with _stdout_for_json(json_out):
            result = train_bi_encoder(data, out_dir, cfg)
    except TamisError as exc:
        _fail(exc)
        return
    _print_train_result(result, json_out)


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
    verbose: VerboseOpt = False,
) -> None:
    """Re-index a collection with a new model: built next to the old version, switched atomically when complete."""
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
                source, model=model, keep_old=keep_old,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except TamisError as exc:
        _fail(exc)
        return
    out.print(
        f"[green]re-indexed[/] {collection}: {report.documents:,} documents with {model}, now served by "
        f"{col.physical} (was {old}); calibrate again if it was calibrated", highlight=False,
    )


# -- demo ---------------------------------------------------------------------------------------
@app.command()
def demo(
    path: PathOpt = None,
    limit: Annotated[int, typer.Option(help="Most docstrings to index.")] = 6000,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """Index the standard library's docstrings into the embedded engine and answer a few questions."""
    _setup_logging(verbose)
    from tamis.cli._demo import run_demo

    try:
        run_demo(out, err, path=path, limit=limit, backend=backend, device=device, progress=_progress)
    except TamisError as exc:
        _fail(exc)


# -- serve --------------------------------------------------------------------------------------
@app.command()
def serve(
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Also serve /search on this collection (its model is served).")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8080,
    model: ModelOpt = None,
    reranker: Annotated[Path | None, typer.Option("--reranker", help="A sentence-transformers CrossEncoder folder: serves /rerank.")] = None,
    serve_api_key: Annotated[
        str | None, typer.Option("--api-key", help="Require 'Authorization: Bearer KEY' (better: set TAMIS_SERVE_API_KEY).",
                                 envvar="TAMIS_SERVE_API_KEY", show_envvar=True)
    ] = None,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="Most texts batched together from concurrent requests.")] = 64,
    encode_batch_size: Annotated[int, typer.Option("--encode-batch-size", help="Most texts per forward pass (raise on a GPU).")] = 32,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="How long a request waits for others to share its batch.")] = 2.0,
    max_request_bytes: Annotated[int, typer.Option("--max-request-bytes", help="Larger request bodies get 413.")] = 2_000_000,
    max_client_batch_size: Annotated[int, typer.Option("--max-client-batch-size", help="Most texts per request (more gets 413).")] = 512,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: Annotated[str | None, typer.Option("--qdrant-api-key", help="Qdrant API key (better: set QDRANT_API_KEY).", envvar="QDRANT_API_KEY")] = None,
    store: StoreOpt = None,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """Serve a model over HTTP: TEI-compatible /embed, /rerank, /info, /health, OpenAI /v1/embeddings, /search."""
    _setup_logging(verbose)
    from tamis.serving import create_app, run

    col = None
    try:
        if collection is not None:
            col = _open(collection, path=path, url=url, api_key=api_key, store=store, model=model, backend=backend, device=device)
            encoder = col.encoder
        else:
            from tamis.encoders import load_encoder

            encoder = load_encoder(model, backend=backend, device=device)  # type: ignore[arg-type]
        cross = None
        if reranker is not None:
            from sentence_transformers import CrossEncoder

            from tamis.encoders import resolve_device

            try:
                cross = CrossEncoder(str(reranker), device=resolve_device(device))
            except (OSError, ValueError) as exc:
                from tamis._errors import ModelError

                raise ModelError(f"could not load the cross-encoder {str(reranker)!r}: {exc}; pass a "
                                 "sentence-transformers CrossEncoder folder") from exc
            cross._tamis_name = str(reranker)
        app = create_app(
            encoder, collection=col, reranker=cross, api_key=serve_api_key, max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms, max_request_bytes=max_request_bytes, max_client_batch_size=max_client_batch_size,
            encode_batch_size=encode_batch_size,
        )
        err.print(
            f"serving [bold]{encoder.name}[/] ({getattr(encoder, 'backend', '?')}, {getattr(encoder, 'device', 'cpu')}) "
            f"on http://{host}:{port}" + (f", /search on {collection}" if collection else "")
            + (", /rerank" if cross is not None else "") + (", API key required" if serve_api_key else ""),
            highlight=False,
        )
        run(app, host=host, port=port, log_level="info" if verbose else "warning")
    except TamisError as exc:
        _fail(exc)
    finally:
        if col is not None:
            col.close()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
