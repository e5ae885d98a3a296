"""The adapter's numeric building blocks: score-list features, the g(c) forms and their inverses.

Everything here is numpy and stateless: `score_features` (what the MLP reads of a query's top-``window``
scores) and `mlp_inputs` (the network's whole input), the monotone maps ``g`` of the cosine with the
inverse the cutoffs need, softplus / logit, and the float32 ceiling that makes a store's
``score >= cutoff`` agree exactly with ``relevance >= τ``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np

from tamis._errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from tamis.calibration._config import AdapterConfig

__all__ = [
    "NEAR_TOP", "NOTHING", "SCORE_FEATURES", "GForm", "ceil_float32", "g_forward", "g_inverse", "logit",
    "mlp_inputs", "score_features", "softplus", "softplus_inv",
]

#: names of the score-list features, in the order of `score_features`' columns
SCORE_FEATURES = ("top1", "gap12", "mean", "std", "last", "top1_minus_mean")
#: ``full`` score-list features count the scores within these distances of the top-1
NEAR_TOP = (0.02, 0.05, 0.1)
GForm = Literal["linear", "sqrt", "square", "power"]
#: c* for a query that no document can satisfy: above any cosine, so the store returns nothing
NOTHING = 2.0


def score_features(window_scores: np.ndarray, *, full: bool = False) -> np.ndarray:
    """Features of each query's candidate score list: (n, W) best-first raw cosines -> (n, 6).

    Missing entries (fewer than W candidates) are NaN. Columns: `SCORE_FEATURES`; with ``full``,
    then the W scores themselves (0 for missing) and the counts of scores within `NEAR_TOP` of the top-1.
    """
    if full:
        s = np.asarray(window_scores, dtype=np.float64)
        top1 = np.where(np.isnan(s[:, :1]), 0.0, s[:, :1])
        near = [np.nansum(s >= top1 - d, axis=1, keepdims=True) for d in NEAR_TOP]
        return np.concatenate([score_features(s), np.nan_to_num(s, nan=0.0), *near], axis=1)
    s = np.asarray(window_scores, dtype=np.float64)
    if s.ndim != 2:
        raise DataError(f"window scores must be a 2-d array (queries x window), got shape {s.shape}")
    n, w = s.shape
    out = np.zeros((n, len(SCORE_FEATURES)), dtype=np.float64)
    if w == 0:
        return out
    valid = ~np.isnan(s)
    cnt = valid.sum(axis=1)
    filled = np.where(valid, s, 0.0)
    top1 = np.where(cnt > 0, filled[:, 0], 0.0)
    top2 = np.where(cnt > 1, filled[:, min(1, w - 1)], top1)
    mean = np.where(cnt > 0, filled.sum(axis=1) / np.maximum(cnt, 1), 0.0)
    var = np.where(valid, (filled - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(cnt, 1)
    last = np.where(cnt > 0, filled[np.arange(n), np.maximum(cnt - 1, 0)], 0.0)
    out[:, 0] = top1
    out[:, 1] = top1 - top2
    out[:, 2] = mean
    out[:, 3] = np.sqrt(var)
    out[:, 4] = last
    out[:, 5] = top1 - mean
    return out


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + eˣ), without overflow: the adapter's slope a(q) > 0."""
    return np.logaddexp(0.0, x)


def softplus_inv(y: float) -> float:
    """The x with softplus(x) = y > 0."""
    return float(y + math.log(-math.expm1(-y))) if y < 30 else float(y)


def logit(p: float) -> float:
    """log(p / (1 − p)), the inverse of the sigmoid."""
    return math.log(p) - math.log1p(-p)


def g_forward(form: str, c: np.ndarray, gamma: float) -> np.ndarray:
    """g(c): ``linear`` is c; ``sqrt``, ``square`` and ``power`` (u^γ) act on u = (c + 1) / 2 in [0, 1]."""
    c = np.asarray(c, dtype=np.float64)
    if form == "linear":
        return c
    u = np.clip((c + 1.0) / 2.0, 0.0, 1.0)
    if form == "sqrt":
        return np.sqrt(u)
    if form == "square":
        return u * u
    return u**gamma


def g_inverse(form: str, y: np.ndarray, gamma: float) -> np.ndarray:
    """The smallest cosine c with g(c) >= y (-1 when any c will do, `NOTHING` when none will)."""
    y = np.asarray(y, dtype=np.float64)
    if form == "linear":
        c = y.copy()
    else:
        yy = np.clip(y, 0.0, None)
        u = {"sqrt": lambda: yy * yy, "square": lambda: np.sqrt(yy), "power": lambda: yy ** (1.0 / gamma)}[form]()
        c = 2.0 * u - 1.0
    c = np.where(np.isnan(c), NOTHING, c)
    return np.where(c > 1.0, NOTHING, np.maximum(c, -1.0))


def ceil_float32(x: np.ndarray) -> np.ndarray:
    """The smallest float32 >= x, so a float32 score passes the store exactly when score >= x."""
    x = np.asarray(x, dtype=np.float64)
    f = x.astype(np.float32)
    low = f.astype(np.float64) < x
    f[low] = np.nextafter(f[low], np.float32(np.inf))
    return f


def mlp_inputs(
    config: AdapterConfig, dim: int, query_vectors: np.ndarray | None, window_scores: np.ndarray | None
) -> np.ndarray:
    """Raw MLP inputs of an adapter with ``config`` over ``dim``-d embeddings: [query embedding][score-list features]."""
    parts = []
    n = None
    if config.use_embedding:
        if query_vectors is None:
            raise ConfigError("this adapter reads the query embedding; pass query_vectors")
        qv = np.asarray(query_vectors, dtype=np.float64)
        if qv.ndim != 2 or qv.shape[1] != dim:
            raise ConfigError(f"query vectors have shape {qv.shape}; this adapter expects (n, {dim})")
        parts.append(qv)
        n = len(qv)
    if config.use_score_features:
        if window_scores is None:
            raise ConfigError(f"this adapter reads each query's top-{config.window} scores; pass window_scores")
        ws = np.asarray(window_scores, dtype=np.float64)
        if ws.ndim != 2:
            raise ConfigError(f"window_scores must be 2-d (queries x window), got shape {ws.shape}")
        ws = ws[:, : config.window]
        if ws.shape[1] < config.window:
            ws = np.concatenate([ws, np.full((len(ws), config.window - ws.shape[1]), np.nan)], axis=1)
        parts.append(score_features(ws, full=config.score_list == "full"))
        if n is not None and len(ws) != n:
            raise ConfigError(f"{len(ws)} score lists for {n} query vectors")
    return np.concatenate(parts, axis=1)
