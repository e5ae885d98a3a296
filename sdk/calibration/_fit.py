"""End-to-end calibration of a collection: candidates, training, threshold, baselines, then storing the adapter.

`calibrate` is what ``Collection.calibrate`` and ``tamis calibrate`` run. It uses only the collection's
public API (its encoder, `encode_queries` / `search_vectors` through `CalibrationData.from_collection`,
and `set_adapter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tamis._errors import CalibrationError, TamisError
from tamis.calibration._adapter import CosineAdapter
from tamis.calibration._baselines import fit_baselines
from tamis.calibration._config import AdapterConfig, make_config
from tamis.calibration._data import CalibrationData, Teacher, holdout_split
from tamis.calibration._threshold import metrics_at

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection import Collection

__all__ = ["calibrate"]


def calibrate(
    collection: Collection,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]] | None,
    dev_queries: Mapping[str, str] | None = None,
    dev_qrels: Mapping[str, Mapping[str, int]] | None = None,
    *,
    target_recall: float | None = None,
    target_precision: float | None = None,
    method: Literal["empirical", "conformal"] = "empirical",
    teacher: Teacher | None = None,
    config: AdapterConfig | Mapping[str, Any] | None = None,
    save: bool = True,
    replace: Literal["always", "if_better"] = "always",
    **overrides: Any,
) -> CosineAdapter:
    """Train a Cosine Adapter on ``collection``, fit its threshold, and store it with the collection.

    Args:
        collection: the collection whose cosines the adapter calibrates (its own encoder encodes the queries).
        queries, qrels: training queries ``{id: text}`` and judgements ``{query id: {doc id: grade}}``.
        dev_queries, dev_qrels: held-out queries for early stopping and the threshold
            (default: a share of the training queries, ``holdout``).
        target_recall / target_precision: what the threshold aims at on the dev queries
            (default: recall 0.9).
        method: ``"empirical"`` or ``"conformal"`` (a recall guarantee; see `CosineAdapter.fit_threshold`).
        teacher: soft labels from ``teacher(query texts, doc texts) -> probabilities``.
        config, overrides: `AdapterConfig` fields (``g="sqrt"``, ``use_embedding=True``, ...).
        save: store the adapter with the collection (searches filter by it from then on).
        replace: ``"if_better"``: store it only if it scores at least as well as the stored adapter on
            the same dev queries (F1 at each one's threshold), else raise `CalibrationError` and keep
            the stored one; ``"always"``: store it in any case.

    Returns:
        the fitted `CosineAdapter`; its ``threshold_report`` and ``extra["training"]`` say how it did.

    Example:
        >>> adapter = tamis.calibration.calibrate(col, queries, qrels, target_recall=0.9)  # doctest: +SKIP
        >>> col.search("how do I reset my password?", k=5)  # filtered by the adapter   # doctest: +SKIP
    """
    cfg = make_config(config, overrides)
    if target_recall is None and target_precision is None:
        target_recall = 0.9
    enc = collection.encoder
    train = CalibrationData.from_collection(collection, queries, qrels, k=cfg.candidates, teacher=teacher)
    dev = None
    if dev_queries is not None:
        dev = CalibrationData.from_collection(collection, dev_queries, dev_qrels, k=cfg.candidates)
    else:
        train, dev = holdout_split(train, cfg.holdout, cfg.seed)
    adapter = CosineAdapter.fit(train, dev, fingerprint=enc.fingerprint, config=cfg)
    adapter.fit_threshold(
        dev if dev is not None else train, target_recall=target_recall, target_precision=target_precision,
        method=method,
    )
    adapter.extra["baselines"] = fit_baselines(
        train, dev if dev is not None else train, target_recall=target_recall, target_precision=target_precision
    )
    if save:
        if replace == "if_better":
            _check_not_worse(adapter, _stored_adapter(collection), dev if dev is not None else train)
        collection.set_adapter(adapter)
    return adapter


def _stored_adapter(collection: Collection) -> CosineAdapter | None:
    """The collection's adapter; None when it has none, or one that cannot be loaded (nothing to keep)."""
    try:
        return collection.adapter
    except TamisError:
        return None


def f1_at_threshold(adapter: CosineAdapter, data: CalibrationData) -> float:
    """Pooled F1 of what ``adapter`` keeps (relevance >= its threshold) among the candidates of ``data``."""
    assert adapter.threshold is not None
    probs = np.nan_to_num(adapter.predict(data), nan=-np.inf)
    mask = data.mask
    return metrics_at(probs, (data.labels >= 0.5) & mask, mask, adapter.threshold)["f1"]


def _check_not_worse(new: CosineAdapter, old: CosineAdapter | None, dev: CalibrationData) -> None:
    """`CalibrationError` when ``new`` filters the dev queries worse than the stored ``old``."""
    if old is None or old.threshold is None or old.dim != new.dim:
        return
    f_new, f_old = f1_at_threshold(new, dev), f1_at_threshold(old, dev)
    new.extra["replaced"] = {"f1": f_new, "f1_before": f_old}
    if f_new < f_old - 1e-9:
        raise CalibrationError(
            f"the new adapter filters the {len(dev)} dev queries worse than the stored one (F1 {f_new:.3f} "
            f"against {f_old:.3f}); the stored adapter is kept. Check the queries and qrels, or replace it "
            "anyway (--force; replace='always')"
        )
