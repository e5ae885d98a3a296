"""Small numeric helpers shared by calibration, evaluation and training (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for any ``x`` (keeps ``x``'s float dtype)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))
