"""Global Platt scaling: one logistic map sigmoid(a·x + b) for every query.

It is where the adapter's training starts (constant a, b) and the ``platt`` baseline of the
filtering evaluation.
"""

from __future__ import annotations

import numpy as np

from tamis._math import sigmoid
from tamis.calibration._features import logit

__all__ = ["platt"]


def platt(x: np.ndarray, y: np.ndarray, *, iters: int = 100, l2: float = 1e-6) -> tuple[float, float]:
    """Logistic regression y ~ sigmoid(a x + b) by Newton's method: the global Platt fit."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    a, b = 1.0, 0.0
    pos = y.mean()
    if 0 < pos < 1:
        b = logit(float(pos))
    for _ in range(iters):
        p = sigmoid(a * x + b)
        w = np.maximum(p * (1 - p), 1e-12)
        ga = np.sum((p - y) * x) + l2 * a
        gb = np.sum(p - y)
        haa = np.sum(w * x * x) + l2
        hab = np.sum(w * x)
        hbb = np.sum(w) + 1e-12
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) < 1e-10 and abs(db) < 1e-10:
            break
    return float(a), float(b)
