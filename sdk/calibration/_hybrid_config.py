"""How a `HybridAdapter` is built and trained (`HybridConfig`), and the features its network reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tamis._errors import ConfigError
from tamis.calibration._features import score_features

__all__ = ["HybridConfig", "hybrid_features", "make_hybrid_config"]


class HybridConfig(BaseModel):
    """How a `HybridAdapter` is built and trained. Unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    window: int = Field(10, ge=2, le=1000)
    """Size of each side's score list the features are computed from."""
    candidates: int = Field(100, ge=2, le=10000)
    """K: each side's prefetch, in training and in the formula query."""
    sparse_default: Literal["floor", "zero"] = "floor"
    """The BM25 score of a document outside the BM25 prefetch: ``"floor"``, the query's K-th BM25 score
    when its prefetch is full (an upper bound of every score outside it; 0 when fewer than K documents
    share a query term: then every other one has 0), as the cosine takes the K-th cosine; ``"zero"``: 0
    (adapters stored before this option existed)."""
    hidden: int = Field(32, ge=1, le=4096)
    """Width of the MLP's hidden layer."""
    epochs: int = Field(80, ge=1)
    """Most passes over the training queries."""
    batch_queries: int = Field(256, ge=1)
    """Queries per optimiser step."""
    lr: float = Field(3e-3, gt=0)
    """Adam learning rate."""
    weight_decay: float = Field(1e-4, ge=0)
    """Adam weight decay (L2)."""
    patience: int = Field(6, ge=1)
    """Stop after this many epochs without a better dev loss."""
    holdout: float = Field(0.15, ge=0, lt=1)
    """Share of training queries held out for early stopping and the threshold when no dev split is given."""
    seed: int = 0
    """Seed of initialisation, shuffling and holdout."""


def make_hybrid_config(config: HybridConfig | Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> HybridConfig:
    """``config`` with ``overrides``, validated (`ConfigError` naming the bad field)."""
    try:
        base = dict(config.model_dump() if isinstance(config, HybridConfig) else (config or {}))
        return HybridConfig(**{**base, **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors())
        raise ConfigError(f"invalid hybrid adapter configuration: {problems}") from None


def hybrid_features(dense_window: np.ndarray, sparse_window: np.ndarray) -> np.ndarray:
    """MLP inputs: score-list features of the top cosines, of the top ln(1 + BM25) scores, and the share of
    the BM25 window that is filled (how many documents share a query term)."""
    sw = np.log1p(np.maximum(np.asarray(sparse_window, dtype=np.float64), 0.0))
    filled = (~np.isnan(sw)).mean(axis=1, keepdims=True)
    return np.concatenate([score_features(np.asarray(dense_window, np.float64)), score_features(sw), filled], axis=1)
