"""Small numeric helpers shared by calibration, evaluation and training (numpy only): the logistic
function, and exact (brute-force) nearest neighbours over unit vectors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["exact_top_k", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for any ``x`` (keeps ``x``'s float dtype)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


def exact_top_k(
    query_vectors: np.ndarray, doc_vectors: np.ndarray, k: int, *, batch_size: int = 1024
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """For each query: (query row, indices of its ``k`` best documents, their cosines), best first.

    Vectors must be L2-normalised (the dot product is the cosine); queries are scored
    ``batch_size`` at a time so memory stays at batch_size x len(doc_vectors).
    """
    qv = np.asarray(query_vectors, dtype=np.float32)
    dv = np.asarray(doc_vectors, dtype=np.float32)
    k = min(k, len(dv))
    if k <= 0:
        return
    for start in range(0, len(qv), batch_size):
        sims = qv[start : start + batch_size] @ dv.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for row, cand in enumerate(top):
            order = cand[np.argsort(-sims[row, cand], kind="stable")]
            yield start + row, order, sims[row, order]
