"""How a Cosine Adapter is built and trained: `AdapterConfig`, and merging a config with keyword overrides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tamis._errors import ConfigError
from tamis.calibration._features import NEAR_TOP, SCORE_FEATURES, GForm

__all__ = ["AdapterConfig", "make_config"]


class AdapterConfig(BaseModel):
    """How a `CosineAdapter` is built and trained. Unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    g: GForm = "linear"
    """Monotone map of the cosine: ``linear`` (c), ``sqrt``, ``square`` or ``power`` (γ learned) of (c + 1) / 2."""
    use_embedding: bool = False
    """Feed the query embedding to the MLP (what Rossi et al. do)."""
    use_score_features: bool = True
    """Feed features of the query's top-``window`` score list (top-1, gap, mean, std, ...) to the MLP."""
    score_list: Literal["summary", "full"] = "summary"
    """Score-list features: ``summary`` (top-1, gap, mean, std, last, top-1 − mean) or ``full`` (those,
    every window score, and how many scores lie within 0.02 / 0.05 / 0.1 of the top-1)."""
    window: int = Field(10, ge=2, le=1000)
    """Size of the score list the features are computed from (the feature window query at search time)."""
    hidden: int = Field(32, ge=1, le=4096)
    """Width of the MLP's hidden layer."""
    candidates: int = Field(100, ge=2, le=10000)
    """K: candidates per training query, taken from the collection's top-K."""
    epochs: int = Field(60, ge=1)
    """Most passes over the training queries."""
    batch_queries: int = Field(256, ge=1)
    """Queries per optimiser step (each brings its K candidates)."""
    lr: float = Field(3e-3, gt=0)
    """Adam learning rate."""
    weight_decay: float = Field(1e-4, ge=0)
    """Adam weight decay (L2)."""
    patience: int = Field(5, ge=1)
    """Stop after this many epochs without a better dev loss."""
    holdout: float = Field(0.1, ge=0, lt=1)
    """Share of training queries held out for early stopping when no dev split is given."""
    seed: int = 0
    """Seed of initialisation, shuffling and holdout: the same seed and data give the same adapter."""

    def input_dim(self, embedding_dim: int) -> int:
        """Width of the MLP's input for ``embedding_dim``-d query embeddings."""
        n_scores = len(SCORE_FEATURES) + (self.window + len(NEAR_TOP) if self.score_list == "full" else 0)
        return (embedding_dim if self.use_embedding else 0) + (n_scores if self.use_score_features else 0)


def make_config(config: AdapterConfig | Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> AdapterConfig:
    """``config`` (an `AdapterConfig`, a dict of its fields or None) with ``overrides`` applied, validated.

    Raises:
        ConfigError: an unknown field, a value out of range, or an adapter without any input.
    """
    try:
        base = dict(config.model_dump() if isinstance(config, AdapterConfig) else (config or {}))
        cfg = AdapterConfig(**{**base, **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors())
        raise ConfigError(f"invalid Cosine Adapter configuration: {problems}") from None
    if not (cfg.use_embedding or cfg.use_score_features):
        raise ConfigError("the adapter needs at least one input: use_embedding=True and/or use_score_features=True")
    return cfg
