"""The baselines the Cosine Adapter is measured against: one global threshold on the raw cosine, on
Platt-scaled scores, or on per-query z-scores; fitted with every calibration for its report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tamis._math import sigmoid
from tamis.calibration._data import CalibrationData
from tamis.calibration._platt import platt
from tamis.calibration._threshold import choose_threshold

if TYPE_CHECKING:  # pragma: no cover
    from tamis.calibration._adapter import CosineAdapter

__all__ = ["METHODS", "fit_baselines", "method_scores"]

METHODS = ("adapter", "cosine", "platt", "zscore")


def _zscore(data: CalibrationData) -> np.ndarray:
    s = data.scores.astype(np.float64)
    mean = np.nanmean(s, axis=1, keepdims=True)
    std = np.nanstd(s, axis=1, keepdims=True)
    return (s - mean) / np.where(std > 1e-9, std, 1.0)


def method_scores(method: str, data: CalibrationData, baselines: Mapping[str, Any], adapter: CosineAdapter | None = None) -> np.ndarray:
    """The (n, K) scores of ``method`` on ``data`` (NaN for padding)."""
    if method == "adapter":
        if adapter is None:
            raise ValueError("the adapter method needs an adapter")
        return adapter.predict(data)
    if method == "cosine":
        return data.scores.astype(np.float64)
    if method == "platt":
        return sigmoid(baselines["platt"]["a"] * data.scores.astype(np.float64) + baselines["platt"]["b"])
    if method == "zscore":
        return _zscore(data)
    raise ValueError(f"unknown method {method!r}; one of {METHODS}")


def fit_baselines(
    train: CalibrationData,
    dev: CalibrationData,
    *,
    target_recall: float | None = None,
    target_precision: float | None = None,
) -> dict[str, Any]:
    """Fit the baselines: Platt's (a, b) on ``train``; each baseline's threshold on ``dev`` for the target."""
    m = train.mask
    a, b = platt(train.scores[m], train.labels[m])
    out: dict[str, Any] = {"platt": {"a": a, "b": b}, "cosine": {}, "zscore": {}}
    for name in ("cosine", "platt", "zscore"):
        rep = choose_threshold(
            method_scores(name, dev, out), dev, target_recall=target_recall, target_precision=target_precision
        )
        out[name]["threshold"] = rep.threshold
    return out
