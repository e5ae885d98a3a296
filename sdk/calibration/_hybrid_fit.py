"""End-to-end calibration of a hybrid collection: candidates from both sides, training, threshold, storing.

`calibrate_hybrid` is what ``tamis calibrate`` runs on a hybrid collection (after the dense Cosine
Adapter). It uses only the collection's public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from tamis._errors import ConfigError
from tamis.calibration._hybrid import HybridAdapter
from tamis.calibration._hybrid_config import HybridConfig, make_hybrid_config
from tamis.calibration._hybrid_data import HybridCalibrationData
from tamis.calibration._hybrid_train import _split

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection import Collection

__all__ = ["calibrate_hybrid"]


def calibrate_hybrid(
    collection: Collection,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    dev_queries: Mapping[str, str] | None = None,
    dev_qrels: Mapping[str, Mapping[str, int]] | None = None,
    *,
    target_recall: float | None = None,
    target_precision: float | None = None,
    method: Literal["empirical", "conformal"] = "empirical",
    config: HybridConfig | Mapping[str, Any] | None = None,
    save: bool = True,
    **overrides: Any,
) -> HybridAdapter:
    """Train a `HybridAdapter` on a hybrid ``collection``, fit its threshold, and store it with the collection.

    Arguments as `tamis.calibration.calibrate` (default target: recall 0.9); ``config`` / ``overrides``
    are `HybridConfig` fields. From then on, ``mode="hybrid"`` searches of the collection are one
    formula query each, returning the documents with relevance >= τ.

    Raises:
        ConfigError: the collection has no BM25 sparse vectors.

    Example:
        >>> adapter = tamis.calibration.calibrate_hybrid(col, queries, qrels)   # doctest: +SKIP
    """
    if not getattr(collection, "hybrid", False):
        raise ConfigError(
            f"collection {collection.name!r} has no BM25 sparse vectors; re-index it with hybrid=True "
            "(`tamis reindex NAME --hybrid`) to calibrate hybrid search"
        )
    cfg = make_hybrid_config(config, overrides)
    if target_recall is None and target_precision is None:
        target_recall = 0.9
    train = HybridCalibrationData.from_collection(collection, queries, qrels, k=cfg.candidates, window=cfg.window)
    if dev_queries is not None and dev_qrels is not None:
        dev = HybridCalibrationData.from_collection(collection, dev_queries, dev_qrels, k=cfg.candidates, window=cfg.window)
    else:
        train, dev = _split(train, cfg.holdout, cfg.seed)
    adapter = HybridAdapter.fit(train, dev, fingerprint=collection.encoder.fingerprint, config=cfg)
    adapter.fit_threshold(dev, target_recall=target_recall, target_precision=target_precision, method=method)
    if save:
        collection.set_adapter(adapter)
    return adapter
