"""The global threshold τ: chosen on held-out calibration data for a target recall or precision.

`choose_threshold` works for any score monotone in relevance (the adapter's probabilities, or a
baseline's scores): empirically over the pooled candidates, or by conformal risk control for a
finite-sample guarantee on the expected per-query recall. `ThresholdReport` says what τ achieves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tamis._errors import CalibrationError, ConfigError
from tamis.calibration._data import CalibrationData

__all__ = ["ThresholdReport", "choose_threshold", "metrics_at"]


@dataclass
class ThresholdReport:
    """The threshold τ chosen by `CosineAdapter.fit_threshold`, and what it achieves on that data."""

    threshold: float
    method: str
    target_recall: float | None
    target_precision: float | None
    precision: float
    recall: float
    f1: float
    empty_share: float
    queries: int
    kept_per_query: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form: the fields, with ``extra`` merged in."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        return {**d, **self.extra}


def choose_threshold(
    probs: np.ndarray,
    data: CalibrationData,
    *,
    target_recall: float | None = None,
    target_precision: float | None = None,
    method: str = "empirical",
) -> ThresholdReport:
    """τ for scores ``probs`` (n, K) (any score monotone in relevance) on ``data``'s labels; see `fit_threshold`."""
    if (target_recall is None) == (target_precision is None):
        raise ConfigError(
            f"give exactly one of target_recall= and target_precision= (got {target_recall!r}, {target_precision!r})"
        )
    target = target_recall if target_recall is not None else target_precision
    if not (isinstance(target, (int, float)) and 0.0 < float(target) <= 1.0):
        raise ConfigError(f"a target recall or precision is in (0, 1], got {target!r}")
    if method not in ("empirical", "conformal"):
        raise ConfigError(f"method must be 'empirical' or 'conformal', got {method!r}")
    if method == "conformal" and target_recall is None:
        raise ConfigError("the conformal method controls recall: pass target_recall=")
    mask = data.mask
    labels = (data.labels >= 0.5) & mask
    r = np.where(mask, probs, -np.inf)
    pos = r[labels]
    if pos.size == 0:
        raise CalibrationError(
            f"no relevant document among the candidates of the {len(data)} calibration queries; cannot fit a threshold"
        )
    extra: dict[str, Any] = {}
    if method == "conformal":
        tau = _conformal_threshold(r, labels, 1.0 - float(target_recall))  # type: ignore[arg-type]
        extra["guarantee"] = f"expected per-query recall >= {target_recall}"
    else:
        flat = r[mask]
        order = np.argsort(-flat, kind="stable")
        s = flat[order]
        tp = np.cumsum(labels[mask][order])
        # evaluate only at the last of each run of ties (a threshold keeps all of a tie)
        last = np.r_[s[1:] != s[:-1], True]
        prec = tp / np.arange(1, len(s) + 1)
        rec = tp / pos.size
        if target_recall is not None:
            ok = np.flatnonzero(last & (rec >= target_recall - 1e-12))
            tau = float(s[ok[0]])
        else:
            ok = np.flatnonzero(last & (prec >= float(target_precision) - 1e-12))  # type: ignore[arg-type]
            if ok.size == 0:
                raise CalibrationError(
                    f"no threshold reaches precision {target_precision} on the calibration data (best "
                    f"{prec[last].max():.3f}); lower target_precision or use target_recall"
                )
            tau = float(s[ok[-1]])
    at = metrics_at(r, labels, mask, tau)
    tau = float(np.clip(tau, 1e-12, 1 - 1e-12)) if np.all((probs[mask] >= 0) & (probs[mask] <= 1)) else tau
    return ThresholdReport(
        threshold=tau, method=method, target_recall=target_recall, target_precision=target_precision,
        precision=at["precision"], recall=at["recall"], f1=at["f1"], empty_share=at["empty_share"], queries=len(data),
        kept_per_query=at["kept"] / max(len(data), 1), extra=extra,
    )


def metrics_at(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray, tau: float) -> dict[str, float]:
    """What keeping the (n, K) ``scores >= tau`` gives: pooled ``precision``, ``recall`` (over the
    relevant candidates, ``labels``), ``f1``, the ``empty_share`` of queries left with nothing, and the
    pairs ``kept`` (``mask``: real candidates, not padding)."""
    keep = (scores >= tau) & mask
    tp = int((keep & labels).sum())
    kept = int(keep.sum())
    p = tp / kept if kept else 1.0
    r = tp / max(int(labels.sum()), 1)
    return {
        "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "empty_share": float(np.mean(~keep.any(axis=1))), "kept": kept,
    }


def _conformal_threshold(r: np.ndarray, labels: np.ndarray, alpha: float) -> float:
    """Conformal risk control for the per-query false-negative rate: the largest τ with
    (n/(n+1))·mean_i FNR_i(τ) + 1/(n+1) <= α over queries with at least one relevant candidate."""
    has = labels.any(axis=1)
    n = int(has.sum())
    bound = (alpha * (n + 1) - 1) / n if n else -1.0
    if bound < 0:
        raise CalibrationError(
            f"conformal risk control at recall {1 - alpha:.3f} needs at least {math.ceil(1 / alpha - 1)} calibration "
            f"queries with a relevant candidate; got {n}. Use more queries or method='empirical'"
        )
    rows, cols = np.nonzero(labels & has[:, None])
    vals = r[rows, cols]
    weights = 1.0 / (labels.sum(axis=1)[rows] * n)
    order = np.argsort(vals, kind="stable")
    vals, weights = vals[order], weights[order]
    # loss at τ = vals[j]: weight of positives strictly below vals[j]
    below = np.r_[0.0, np.cumsum(weights)[:-1]]
    # with ties, positives equal to vals[j] are kept: use the first index of each run
    first = np.r_[True, vals[1:] != vals[:-1]]
    ok = np.flatnonzero(first & (below <= bound + 1e-12))
    return float(vals[ok[-1]])
