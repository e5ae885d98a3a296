"""`tamis calibrate` and `tamis eval`: a collection's Cosine Adapter, and how well it ranks and filters."""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    _setup_logging,
    app,
    encoder_options,
    err,
    out,
)
from tamis.cli._hybrid import (
    RerankOpt,
    RerankTopNOpt,
    calibrate_hybrid_step,
    hybrid_eval,
    hybrid_line,
    hybrid_table,
    rerank_step,
)


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
    data: Annotated[Path | None, typer.Option("--data", help="A BEIR folder: queries.jsonl and qrels/<split>.tsv.")] = None,
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
    force: Annotated[
        bool, typer.Option("--force", help="Store the new adapter even if it filters the dev queries worse than the stored one, "
                           "or the qrels judge many documents the collection lacks.")
    ] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the collection's calibration (searches are unfiltered again).")] = False,
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
    rerank: RerankOpt = None,
    rerank_top_n: RerankTopNOpt = 30,
) -> None:
    """Train a Cosine Adapter on a collection from BEIR qrels and store it with the collection.

    Searches on the collection then return only documents whose calibrated relevance reaches
    the threshold (use --no-filter to see the plain top-k).
    """
    _setup_logging(verbose)
    from tamis.data import load_beir_queries, load_qrels

    if remove:
        _remove(collection, data, path=path, url=url, api_key=api_key, store=store)
        return
    try:
        if data is None:
            from tamis._errors import ConfigError

            raise ConfigError("give --data BEIR_FOLDER (queries and qrels to calibrate on), or --remove")
        cfg = {"g": g, "candidates": candidates, "seed": seed, "score_list": score_list, **_features(features)}
        queries = load_beir_queries(data)
        qrels = load_qrels(data, split)
        dev_q = dev_r = None
        if dev_split is not None:
            dev_r = load_qrels(data, dev_split)
            dev_q = {q: t for q, t in queries.items() if q in dev_r}
        with _open(collection, path=path, url=url, api_key=api_key, store=store, model=model,
                   backend=backend, device=device,
                   encoder_url=encoder_url, encoder_api_key=encoder_api_key,
                   encoder_options=encoder_options(timeout, retries)) as col:
            _check_coverage(col, [qrels, dev_r or {}], force=force)
            with err.status(f"calibrating {collection} on {split} ..."):
                adapter = col.calibrate(
                    {q: t for q, t in queries.items() if q in qrels}, qrels, dev_q, dev_r,
                    target_recall=target_recall, target_precision=target_precision,
                    method="conformal" if conformal else "empirical", config=cfg,
                    replace="always" if force else "if_better",
                )
                hybrid_report = calibrate_hybrid_step(  # a hybrid collection: its hybrid adapter too
                    col, {q: t for q, t in queries.items() if q in qrels}, qrels, dev_q, dev_r,
                    target_recall=target_recall, target_precision=target_precision,
                    method="conformal" if conformal else "empirical", candidates=candidates, seed=seed,
                )
                rerank_report = rerank_step(
                    col, rerank, queries, dev_r or qrels, top_n=rerank_top_n, target_recall=target_recall,
                    target_precision=target_precision, device=device,
                )
            if save is not None:
                adapter.save(save)
    except TamisError as exc:
        _fail(exc)
        return
    report = {"collection": collection, "adapter": repr(adapter), "threshold": adapter.threshold_report,
              "training": adapter.extra.get("training"), "saved": None if save is None else str(save),
              "hybrid": hybrid_report, "rerank": rerank_report}
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
        + (f"\n  saved to {save}" if save else "") + hybrid_line(hybrid_report),
        highlight=False,
    )


#: judged documents missing from the collection: above this share a warning, above the second a refusal
MISSING_WARN, MISSING_REFUSE = 0.01, 0.2


def _check_coverage(col: Any, qrels: list[Mapping[str, Mapping[str, int]]], *, force: bool) -> None:
    """Warn when the qrels judge documents the collection lacks; refuse (unless ``force``) above a large share."""
    judged = {d for r in qrels for docs in r.values() for d, grade in docs.items() if grade > 0}
    if not judged:
        return
    missing = col.missing_documents(judged)
    share = len(missing) / len(judged)
    what = (f"{len(missing)} of {len(judged)} judged documents ({share:.0%}) are not in collection {col.name!r} "
            f"(e.g. {', '.join(sorted(missing)[:3])})")
    if share > MISSING_REFUSE and not force:
        from tamis._errors import DataError

        raise DataError(
            f"{what}: these qrels judge another corpus or another version of it, and an adapter trained on them "
            "would be wrong; index the corpus they judge, or pass --force"
        )
    if share > MISSING_WARN:
        err.print(f"[yellow]warning:[/] {what}; their queries count as misses", highlight=False)


def _remove(collection: str, data: Path | None, **where: Any) -> None:
    """`tamis calibrate --remove`: the collection without its calibration (even a broken one)."""
    try:
        if data is not None:
            from tamis._errors import ConfigError

            raise ConfigError("--remove takes no --data")
        with _open(collection, model=None, backend="auto", device="auto", **where) as col:
            before = len(col.info()["stages"])
            col.set_adapter(None)  # reads no weights: a broken adapter goes too
            removed = before - len(col.info()["stages"])
    except TamisError as exc:
        _fail(exc)
        return
    if not removed:
        out.print(f"{collection} is not calibrated: nothing to remove", highlight=False)
        return
    out.print(f"[green]removed[/] the calibration of [bold]{collection}[/]; searches are unfiltered", highlight=False)


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
                result["hybrid"] = hybrid_eval(col, queries, qrels, k=k, plot=plot or Path(f"tamis-eval-{collection}-{split}.png"))
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
    if result["hybrid"]:
        out.print(hybrid_table(result["hybrid"], k))
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
