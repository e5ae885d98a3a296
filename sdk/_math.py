"""Small numeric helpers shared by calibration, evaluation and training (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, computed without overflow for large ``|x|``."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))
