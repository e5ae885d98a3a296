"""The hybrid options of the CLI (``--hybrid``, ``--mode``, ``--fusion``) and the hybrid steps of calibrate / eval.

Kept here so that `tamis.cli._collections` and `tamis.cli._calibrate` only add a parameter and one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

__all__: list[str] = []

HybridOpt = Annotated[
    bool, typer.Option("--hybrid", help="Store each chunk's BM25 sparse vector too (dense + BM25 hybrid search).")
]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", help="dense | sparse | hybrid (default: hybrid on a hybrid collection).")
]
FusionOpt = Annotated[
    str | None, typer.Option("--fusion", help="--mode hybrid: rrf | dbsf instead of the calibrated formula.")
]


def search_options(mode: str | None, fusion: str | None, no_rerank: bool = False) -> dict[str, Any]:
    """The search keyword arguments of ``--mode`` / ``--fusion`` / ``--no-rerank`` (nothing when not given)."""
    given = {k: v for k, v in (("mode", mode), ("fusion", fusion)) if v is not None}
    return {**given, "rerank": False} if no_rerank else given


def calibrate_hybrid_step(
    col: Any, queries: Mapping[str, str], qrels: Any, dev_q: Any, dev_r: Any, **options: Any
) -> dict[str, Any] | None:
    """On a hybrid collection, fit and store the hybrid adapter too; its threshold report (None otherwise)."""
    if not getattr(col, "hybrid", False):
        return None
    from tamis.calibration import calibrate_hybrid

    adapter = calibrate_hybrid(col, queries, qrels, dev_q, dev_r, **options)
    return {"adapter": repr(adapter), "threshold": adapter.threshold_report, "training": adapter.extra.get("training")}


def hybrid_line(report: Mapping[str, Any] | None) -> str:
    """One line saying what the hybrid calibration achieved ('' when there was none)."""
    if not report:
        return ""
    t = report["threshold"]
    return (
        f"\n  hybrid (dense + BM25, one formula query): τ={t['threshold']:.4f}, precision {t['precision']:.3f}, "
        f"recall {t['recall']:.3f}, {t['empty_share']:.1%} answered empty on {t['queries']:,} dev queries"
    )


def hybrid_eval(col: Any, queries: Mapping[str, str], qrels: Any, *, k: int, plot: Any) -> dict[str, Any] | None:
    """`tamis.evaluation.evaluate_hybrid` on a hybrid collection (its PR curves in ``plot``); None otherwise."""
    if not getattr(col, "hybrid", False):
        return None
    from tamis.evaluation import evaluate_hybrid

    return evaluate_hybrid(col, queries, qrels, k=k, plot=plot)


def hybrid_table(rows: Mapping[str, Mapping[str, float]], k: int) -> Any:
    """The side-by-side table of `hybrid_eval`."""
    from rich.table import Table

    table = Table(title=f"hybrid retrieval, top-{k} of each method", header_style="bold", box=None)
    cols = [("nDCG@10", "nDCG@10"), ("Recall@100", "R@100"), ("pr_auc", "PR-AUC"), ("threshold", "τ"),
            ("precision", "P@τ"), ("recall", "R@τ"), ("empty_share", "empty")]
    table.add_column("method")
    for _, title in cols:
        table.add_column(title, justify="right")
    for method, row in rows.items():
        table.add_row(method, *("" if key not in row else f"{row[key]:.4f}" for key, _ in cols))
    return table


RerankOpt = Annotated[
    str | None,
    typer.Option("--rerank", help="Also calibrate this cross-encoder (folder, hub name or /rerank server URL) as the rerank stage."),
]
RerankTopNOpt = Annotated[int, typer.Option("--rerank-top-n", help="Candidates the reranker re-scores.")]
NoRerankOpt = Annotated[bool, typer.Option("--no-rerank", help="Skip the collection's rerank stage.")]


def rerank_step(col: Any, model: str | None, queries: Mapping[str, str], qrels: Any, **options: Any) -> dict[str, Any] | None:
    """With ``--rerank MODEL``: calibrate it on the collection and store the ``rerank`` stage; its report."""
    if model is None:
        return None
    from tamis.calibration import calibrate_rerank

    settings = calibrate_rerank(col, model, queries, qrels, **options)
    return {"model": settings["model"], "platt": settings["platt"], "threshold": settings["threshold_report"]}
