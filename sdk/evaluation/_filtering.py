"""Evaluation of relevance filtering: the Cosine Adapter against the usual baselines, in one run.

Methods, each a score over a query's top-K candidates with one global threshold:

* ``adapter``: the Cosine Adapter's calibrated relevance r(q, d);
* ``cosine``: the raw cosine with one global threshold (what ``score_threshold`` does);
* ``platt``: global Platt scaling sigmoid(a·c + b) (calibrated, but monotone in c: ranks as ``cosine``);
* ``zscore``: the per-query z-score of the cosine over the query's top-K.

Metrics, pooled over all (query, candidate) pairs: PR-AUC (average precision; ``pr_auc`` with recall
over the relevant candidates, ``pr_auc_judged`` over every judged relevant document), precision at
recall 0.5, precision / recall / F1 at the method's threshold (fitted on dev data), the share of
queries answered empty, and for probabilities the Brier score and expected calibration error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tamis.calibration import METHODS, CalibrationData, method_scores, metrics_at
from tamis.evaluation._metrics import average_precision, ir_metrics, pr_curve, precision_at_recall

if TYPE_CHECKING:  # pragma: no cover
    from tamis.calibration import CosineAdapter
    from tamis.collection import Collection

__all__ = ["evaluate_collection", "evaluate_filtering", "plot_pr_curves"]

logger = logging.getLogger("tamis")

def _calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    err = 0.0
    for i in range(bins):
        sel = idx == i
        if sel.any():
            err += sel.mean() * abs(p[sel].mean() - y[sel].mean())
    return float(err)


def evaluate_filtering(
    data: CalibrationData,
    *,
    adapter: CosineAdapter | None,
    baselines: Mapping[str, Any],
    methods: tuple[str, ...] = METHODS,
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Metrics of each method on ``data`` (hard labels) and its pooled PR curve ``(precision, recall)``."""
    mask = data.mask
    labels = (data.labels >= 0.5) & mask
    y = labels[mask]
    # share of all judged relevant documents that are among the candidates: PR-AUC against the
    # judgements (recall over every relevant document, found or not) is PR-AUC over the candidates times it
    judged = data.relevant[~np.isnan(data.relevant)] if data.relevant is not None else np.array([])
    coverage = float(labels.sum() / judged.sum()) if judged.size == len(data) and judged.sum() > 0 else None
    table: dict[str, dict[str, float]] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in methods:
        if name == "adapter" and adapter is None:
            continue
        scores = method_scores(name, data, baselines, adapter)
        flat = scores[mask]
        tau = adapter.threshold if name == "adapter" else baselines.get(name, {}).get("threshold")
        row: dict[str, float] = {
            "pr_auc": average_precision(flat, y),
            "p_at_r50": precision_at_recall(flat, y, 0.5),
        }
        if coverage is not None:
            row["pr_auc_judged"] = row["pr_auc"] * coverage
        if tau is not None:
            at = metrics_at(scores, labels, mask, tau)
            row.update(threshold=float(tau), precision=at["precision"], recall=at["recall"], f1=at["f1"],
                       empty_share=at["empty_share"])
        if name in ("adapter", "platt"):
            row["brier"] = float(np.mean((flat - y) ** 2))
            row["ece"] = _calibration_error(flat, y.astype(np.float64))
        table[name] = row
        p_curve, r_curve, _ = pr_curve(flat, y)
        curves[name] = (p_curve, r_curve)
    return table, curves


def plot_pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, title: str = "") -> Path:
    """Save the pooled precision–recall curves as a PNG (matplotlib, Agg backend)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('the PR-curve plot needs matplotlib; install it with: pip install "tamis[eval]"') from exc
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    labels = {"adapter": "Cosine Adapter", "cosine": "global cosine threshold", "platt": "global Platt",
              "zscore": "per-query z-score"}
    for name, (p, r) in curves.items():
        # Platt scaling is monotone in the cosine: its curve is the global threshold's (drawn dashed on top)
        ax.plot(r, p, label=labels.get(name, name), lw=1.6 if name == "adapter" else 1.1,
                ls="--" if name == "platt" else "-")
    ax.set_xlabel("recall (pooled over the top-K candidates)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def evaluate_collection(
    collection: Collection,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    k: int = 100,
    plot: str | Path | None = None,
) -> dict[str, Any]:
    """Ranking metrics of ``collection`` on ``queries``, and filtering metrics of its adapter and the baselines.

    Returns ``{"ranking": {...}, "filtering": {method: {...}}, "queries": n, "k": k, "plot": path}``;
    ``filtering`` is empty for an uncalibrated collection.
    """
    data = CalibrationData.from_collection(collection, queries, qrels, k=k)
    run = {
        q: {d: float(s) for d, s in zip(docs, row, strict=False)}
        for q, docs, row in zip(data.query_ids, data.doc_ids or [], data.scores, strict=True)
    }
    result: dict[str, Any] = {"queries": len(data), "k": k, "ranking": ir_metrics(run, {q: qrels[q] for q in data.query_ids})}
    adapter = collection.adapter
    if adapter is None:
        result["filtering"] = {}
        return result
    baselines = adapter.extra.get("baselines") or {}
    methods = tuple(m for m in METHODS if m == "adapter" or m in baselines)
    table, curves = evaluate_filtering(data, adapter=adapter, baselines=baselines, methods=methods)
    result["filtering"] = table
    result["adapter"] = {"config": adapter.config.model_dump(), "threshold": adapter.threshold,
                         "threshold_report": adapter.threshold_report}
    if plot is not None:
        result["plot"] = str(plot_pr_curves(curves, plot, title=f"{collection.name}: {len(data)} queries, top-{k}"))
    return result
