"""The Cosine Adapter: raw cosine -> calibrated, query-dependent probability of relevance.

    r(q, d) = sigmoid(a(q) · g(c) + b(q))

``c`` is the raw cosine of query and document, ``g`` a monotone increasing map (``linear`` on c;
``sqrt``, ``square`` and ``power`` on c' = (c + 1) / 2, which is in [0, 1]), ``a(q) = softplus(.) > 0``
and ``b(q)`` the two outputs of a small MLP whose inputs are the query embedding and/or features
of the query's candidate score list (top-1, top-1 − top-2 gap, mean, std, ... of its top
``window`` scores). Because r is monotone in c for a fixed query, ``r >= τ`` is the same as
``c >= c*(q) = g⁻¹((logit τ − b(q)) / a(q))``, a per-query cosine cutoff that the vector store
applies itself (`CosineAdapter.cutoffs`).

Training (`CosineAdapter.fit`) reads `CalibrationData`: per query, its top-K candidates from the
collection with their raw cosines and labels (from qrels, or a teacher's probabilities). The loss
is binary cross-entropy; the network starts at a global Platt fit (constant a, b) and stops early
on a dev split. Training is seeded and deterministic on CPU. Inference is numpy (no torch).

Saved as safetensors (weights) + JSON (configuration, threshold, the encoder's fingerprint).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tamis._errors import CalibrationError, ConfigError, DataError, ModelMismatchError

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection import Collection

__all__ = [
    "SCORE_FEATURES",
    "AdapterConfig",
    "CalibrationData",
    "CosineAdapter",
    "Teacher",
    "ThresholdReport",
    "TrainingReport",
    "score_features",
]

logger = logging.getLogger("tamis")

ADAPTER_FORMAT = 1
#: names of the score-list features, in the order of `score_features`' columns
SCORE_FEATURES = ("top1", "gap12", "mean", "std", "last", "top1_minus_mean")
#: ``full`` score-list features count the scores within these distances of the top-1
NEAR_TOP = (0.02, 0.05, 0.1)
#: a teacher scores (query text, document text) pairs with probabilities of relevance in [0, 1]
Teacher = Callable[[Sequence[str], Sequence[str]], Sequence[float]]
GForm = Literal["linear", "sqrt", "square", "power"]
#: c* for a query that no document can satisfy: above any cosine, so the store returns nothing
NOTHING = 2.0


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
        n_scores = len(SCORE_FEATURES) + (self.window + len(NEAR_TOP) if self.score_list == "full" else 0)
        return (embedding_dim if self.use_embedding else 0) + (n_scores if self.use_score_features else 0)


def _config(config: AdapterConfig | Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> AdapterConfig:
    try:
        base = dict(config.model_dump() if isinstance(config, AdapterConfig) else (config or {}))
        cfg = AdapterConfig(**{**base, **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors())
        raise ConfigError(f"invalid Cosine Adapter configuration: {problems}") from None
    if not (cfg.use_embedding or cfg.use_score_features):
        raise ConfigError("the adapter needs at least one input: use_embedding=True and/or use_score_features=True")
    return cfg


# -- features --------------------------------------------------------------------------------------
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


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _softplus_inv(y: float) -> float:
    return float(y + math.log(-math.expm1(-y))) if y < 30 else float(y)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def _g_numpy(form: str, c: np.ndarray, gamma: float) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    if form == "linear":
        return c
    u = np.clip((c + 1.0) / 2.0, 0.0, 1.0)
    if form == "sqrt":
        return np.sqrt(u)
    if form == "square":
        return u * u
    return u**gamma


def _g_inverse(form: str, y: np.ndarray, gamma: float) -> np.ndarray:
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


def _ceil_float32(x: np.ndarray) -> np.ndarray:
    """The smallest float32 >= x, so a float32 score passes the store exactly when score >= x."""
    x = np.asarray(x, dtype=np.float64)
    f = x.astype(np.float32)
    low = f.astype(np.float64) < x
    f[low] = np.nextafter(f[low], np.float32(np.inf))
    return f


# -- data ------------------------------------------------------------------------------------------
@dataclass
class CalibrationData:
    """Candidates of a set of queries: what an adapter is trained, thresholded and evaluated on.

    Attributes:
        query_ids: the queries, in row order.
        query_vectors: (n, dim) float32 query embeddings.
        scores: (n, K) raw cosines of each query's top-K candidates, best first; NaN pads short lists.
        labels: (n, K) relevance labels in [0, 1] (1 relevant; a teacher's probability; 0 for padding).
        doc_ids: (n lists of up to K) candidate document ids, when known.
        relevant: (n,) relevant documents of each query in the qrels (found among the candidates or
            not), for recall against the judgements; NaN when unknown (soft labels).
    """

    query_ids: list[str]
    query_vectors: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    doc_ids: list[list[str]] | None = None
    relevant: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.query_vectors = np.asarray(self.query_vectors, dtype=np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.float32)
        n = len(self.query_ids)
        if self.query_vectors.ndim != 2 or len(self.query_vectors) != n:
            raise DataError(f"query_vectors must be ({n}, dim), got {self.query_vectors.shape}")
        if self.scores.ndim != 2 or self.scores.shape[0] != n or self.labels.shape != self.scores.shape:
            raise DataError(
                f"scores and labels must both be ({n}, K); got {self.scores.shape} and {self.labels.shape}"
            )
        if np.any((self.labels < 0) | (self.labels > 1)):
            raise DataError("labels must lie in [0, 1]")
        if self.relevant is None:
            self.relevant = np.full(n, np.nan)

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def mask(self) -> np.ndarray:
        """True where a candidate exists (not padding)."""
        return ~np.isnan(self.scores)

    def window(self, w: int) -> np.ndarray:
        """The top-``w`` scores of each query (NaN padded): the score-list feature window."""
        s = self.scores[:, :w]
        if s.shape[1] < w:
            s = np.concatenate([s, np.full((len(s), w - s.shape[1]), np.nan, dtype=np.float32)], axis=1)
        return s

    def subset(self, rows: Sequence[int] | np.ndarray) -> CalibrationData:
        idx = np.asarray(rows, dtype=np.int64)
        return CalibrationData(
            [self.query_ids[i] for i in idx], self.query_vectors[idx], self.scores[idx], self.labels[idx],
            None if self.doc_ids is None else [self.doc_ids[i] for i in idx],
            None if self.relevant is None else self.relevant[idx],
        )

    @classmethod
    def from_collection(
        cls,
        collection: Collection,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]] | None = None,
        *,
        k: int = 100,
        teacher: Teacher | None = None,
        batch_size: int = 256,
        exact: bool = False,
    ) -> CalibrationData:
        """Top-``k`` candidates of ``queries`` from ``collection``, labelled.

        Args:
            collection: a tamis collection (its own encoder encodes the queries).
            queries: ``{query id: text}``. With qrels, only queries that have judgements are used.
            qrels: ``{query id: {doc id: grade}}``; grade > 0 is relevant (label 1), the rest 0.
            k: candidates per query.
            teacher: instead of (or with queries lacking) qrels: ``teacher(query texts, doc texts)``
                -> probabilities of relevance, used as soft labels.
        """
        if qrels is None and teacher is None:
            raise ConfigError("give qrels (labelled pairs) or a teacher (soft labels) to build calibration data")
        if qrels is not None:
            ids = [q for q in queries if q in qrels]
            if teacher is None and not ids:
                raise DataError(
                    f"none of the {len(queries)} queries has relevance judgements (qrels cover "
                    f"{len(qrels)} queries); check that the split's qrels match the queries file"
                )
            if teacher is not None:
                ids = list(queries)
        else:
            ids = list(queries)
        vecs_all, scores_all, labels_all, docs_all, rel_all = [], [], [], [], []
        for start in range(0, len(ids), batch_size):
            part = ids[start : start + batch_size]
            texts = [queries[q] for q in part]
            vecs = collection.encode_queries(texts, batch_size=batch_size)
            results = collection.search_vectors(vecs, k, exact=exact, relevance_filter=False)
            for qid, text, vec, hits in zip(part, texts, vecs, results, strict=True):
                s = np.full(k, np.nan, dtype=np.float32)
                y = np.zeros(k, dtype=np.float32)
                s[: len(hits)] = [h.score for h in hits]
                judged = (qrels or {}).get(qid)
                if judged is not None:
                    y[: len(hits)] = [1.0 if judged.get(h.id, 0) > 0 else 0.0 for h in hits]
                    rel_all.append(float(sum(1 for g in judged.values() if g > 0)))
                elif teacher is not None and hits:
                    probs = np.asarray(teacher([text] * len(hits), [h.text for h in hits]), dtype=np.float32)
                    if probs.shape != (len(hits),) or np.any(~np.isfinite(probs)) or np.any((probs < 0) | (probs > 1)):
                        raise DataError(
                            f"the teacher must return {len(hits)} probabilities in [0, 1] for query {qid!r}, "
                            f"got {probs[:5]!r}..."
                        )
                    y[: len(hits)] = probs
                    rel_all.append(float("nan"))
                else:
                    rel_all.append(float("nan"))
                vecs_all.append(vec)
                scores_all.append(s)
                labels_all.append(y)
                docs_all.append([h.id for h in hits])
        if not ids:
            raise DataError("no queries to build calibration data from")
        return cls(ids, np.stack(vecs_all), np.stack(scores_all), np.stack(labels_all), docs_all, np.asarray(rel_all))

    @classmethod
    def from_vectors(
        cls,
        query_ids: Sequence[str],
        query_vectors: np.ndarray,
        doc_ids: Sequence[str],
        doc_vectors: np.ndarray,
        qrels: Mapping[str, Mapping[str, int]],
        *,
        k: int = 100,
        batch_size: int = 1024,
    ) -> CalibrationData:
        """Exact top-``k`` candidates by brute-force cosine over unit vectors (for benchmarks, small sets)."""
        from tamis.evaluation import exact_top_k

        qv = np.asarray(query_vectors, dtype=np.float32)
        scores, labels, docs, rel = [], [], [], []
        for row, order, sims in exact_top_k(qv, doc_vectors, k, batch_size=batch_size):
            judged = qrels.get(query_ids[row], {})
            ids = [doc_ids[j] for j in order]
            scores.append(sims)
            labels.append([1.0 if judged.get(d, 0) > 0 else 0.0 for d in ids])
            docs.append(ids)
            rel.append(float(sum(1 for g in judged.values() if g > 0)))
        return cls(list(query_ids), qv, np.asarray(scores), np.asarray(labels), docs, np.asarray(rel))


@dataclass
class TrainingReport:
    """What `CosineAdapter.fit` did."""

    epochs: int
    best_epoch: int
    train_loss: float
    dev_loss: float
    platt: tuple[float, float]
    seconds: float
    queries: int
    pairs: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


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
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        return {**d, **self.extra}


# -- the adapter -----------------------------------------------------------------------------------
class CosineAdapter:
    """Calibrated, query-dependent relevance: r = sigmoid(a(q)·g(c) + b(q)), with one threshold τ.

    Build one with `CosineAdapter.fit` (or `Collection.calibrate`, which also stores it with the
    collection so that searches filter by it), then `fit_threshold`.

    Example:
        >>> train = CalibrationData.from_collection(col, queries, qrels)          # doctest: +SKIP
        >>> adapter = CosineAdapter.fit(train, dev, fingerprint=col.encoder.fingerprint)  # doctest: +SKIP
        >>> adapter.fit_threshold(dev, target_recall=0.9)                           # doctest: +SKIP
        >>> col.set_adapter(adapter)                                                # doctest: +SKIP
    """

    WEIGHT_NAMES = ("mu", "sd", "w1", "b1", "w2", "b2", "log_gamma")

    def __init__(
        self,
        config: AdapterConfig,
        weights: Mapping[str, np.ndarray],
        *,
        fingerprint: str,
        dim: int,
        threshold: float | None = None,
        threshold_report: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        missing = set(self.WEIGHT_NAMES) - set(weights)
        if missing:
            raise CalibrationError(f"adapter weights lack {sorted(missing)}; the file is not a tamis Cosine Adapter")
        self.config = config
        self.weights = {k: np.asarray(weights[k], dtype=np.float64) for k in self.WEIGHT_NAMES}
        self.fingerprint = fingerprint
        self.dim = int(dim)
        self.threshold = threshold
        self.threshold_report: dict[str, Any] = dict(threshold_report or {})
        #: free-form JSON information saved with the adapter (training report, baselines)
        self.extra: dict[str, Any] = dict(extra or {})
        f_in = config.input_dim(self.dim)
        w1 = self.weights["w1"]
        if w1.shape != (config.hidden, f_in) or self.weights["w2"].shape != (2, config.hidden):
            raise CalibrationError(
                f"adapter weights have shapes w1={w1.shape}, w2={self.weights['w2'].shape}; the configuration "
                f"expects ({config.hidden}, {f_in}) and (2, {config.hidden}); the file is corrupted or mismatched"
            )

    def __repr__(self) -> str:
        c = self.config
        inputs = "+".join(n for n, on in (("embedding", c.use_embedding), ("scores", c.use_score_features)) if on)
        return f"CosineAdapter(g={c.g!r}, inputs={inputs}, threshold={self.threshold})"

    @property
    def gamma(self) -> float:
        return float(np.exp(self.weights["log_gamma"].reshape(-1)[0]))

    @property
    def needs_window(self) -> bool:
        """Whether a query's top-``window`` scores are an input (the feature window query)."""
        return self.config.use_score_features

    # -- inference (numpy) -------------------------------------------------------------------------
    def features(self, query_vectors: np.ndarray | None, window_scores: np.ndarray | None) -> np.ndarray:
        """Raw MLP inputs: [query embedding][score-list features], as configured."""
        parts = []
        n = None
        if self.config.use_embedding:
            if query_vectors is None:
                raise ConfigError("this adapter reads the query embedding; pass query_vectors")
            qv = np.asarray(query_vectors, dtype=np.float64)
            if qv.ndim != 2 or qv.shape[1] != self.dim:
                raise ConfigError(f"query vectors have shape {qv.shape}; this adapter expects (n, {self.dim})")
            parts.append(qv)
            n = len(qv)
        if self.config.use_score_features:
            if window_scores is None:
                raise ConfigError(f"this adapter reads each query's top-{self.config.window} scores; pass window_scores")
            ws = np.asarray(window_scores, dtype=np.float64)
            if ws.ndim != 2:
                raise ConfigError(f"window_scores must be 2-d (queries x window), got shape {ws.shape}")
            ws = ws[:, : self.config.window]
            if ws.shape[1] < self.config.window:
                ws = np.concatenate([ws, np.full((len(ws), self.config.window - ws.shape[1]), np.nan)], axis=1)
            parts.append(score_features(ws, full=self.config.score_list == "full"))
            if n is not None and len(ws) != n:
                raise ConfigError(f"{len(ws)} score lists for {n} query vectors")
        return np.concatenate(parts, axis=1)

    def params(self, query_vectors: np.ndarray | None = None, window_scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(a(q), b(q)) for each query: a > 0 is the slope, b the offset of the logit."""
        w = self.weights
        x = (self.features(query_vectors, window_scores) - w["mu"]) / w["sd"]
        h = np.tanh(x @ w["w1"].T + w["b1"])
        out = h @ w["w2"].T + w["b2"]
        return _softplus(out[:, 0]), out[:, 1]

    def relevance(
        self, scores: np.ndarray, query_vectors: np.ndarray | None = None, window_scores: np.ndarray | None = None
    ) -> np.ndarray:
        """Probabilities of relevance for raw cosines ``scores`` (n, m) of n queries (NaN stays NaN)."""
        return self.relevance_from_params(scores, *self.params(query_vectors, window_scores))

    def relevance_from_params(self, scores: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """`relevance` with (a, b) from `params` already computed."""
        s = np.asarray(scores, dtype=np.float64)
        return _sigmoid(a[:, None] * _g_numpy(self.config.g, s, self.gamma) + b[:, None])

    def predict(self, data: CalibrationData) -> np.ndarray:
        """`relevance` of every candidate in ``data`` ((n, K), NaN for padding)."""
        self._check_dim(data.query_vectors.shape[1])
        return self.relevance(data.scores, data.query_vectors, data.window(self.config.window))

    def cutoffs(
        self,
        query_vectors: np.ndarray | None = None,
        window_scores: np.ndarray | None = None,
        *,
        threshold: float | None = None,
    ) -> np.ndarray:
        """c*(q) per query: the smallest float32 cosine whose relevance is >= τ.

        ``r >= τ  ⇔  c >= c*(q) = g⁻¹((logit τ − b(q)) / a(q))``. -1 means every document passes,
        2 (above any cosine) that none does. Pass these as the store's ``score_threshold``.
        """
        return self.cutoffs_from_params(*self.params(query_vectors, window_scores), threshold=threshold)

    def cutoffs_from_params(self, a: np.ndarray, b: np.ndarray, *, threshold: float | None = None) -> np.ndarray:
        """`cutoffs` with (a, b) from `params` already computed."""
        tau = self._tau(threshold)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            y = (_logit(tau) - b) / a
        return _ceil_float32(_g_inverse(self.config.g, y, self.gamma))

    threshold_for = cutoffs

    def _tau(self, threshold: float | None) -> float:
        tau = self.threshold if threshold is None else threshold
        if tau is None:
            raise CalibrationError("this adapter has no threshold yet; call fit_threshold(...) or pass threshold=")
        if not 0.0 < float(tau) < 1.0:
            raise ConfigError(f"a relevance threshold is a probability strictly between 0 and 1, got {tau!r}")
        return float(tau)

    def _check_dim(self, dim: int) -> None:
        if dim != self.dim:
            raise ModelMismatchError(f"query vectors are {dim}-d; this adapter was trained on {self.dim}-d ones")

    # -- training (torch) --------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        train: CalibrationData,
        dev: CalibrationData | None = None,
        *,
        fingerprint: str,
        config: AdapterConfig | Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> CosineAdapter:
        """Train an adapter on ``train`` (BCE), early-stopping on ``dev`` (or a held-out share of train).

        Args:
            train: candidates and labels of the training queries.
            dev: candidates of other queries for early stopping; default: ``config.holdout`` of train.
            fingerprint: the encoder's fingerprint; the adapter only serves collections of that model.
            config: an `AdapterConfig` (or a dict of its fields); keyword arguments override fields.

        The report is in ``adapter.extra["training"]``.
        """
        import torch

        cfg = _config(config, overrides)
        if len(train) == 0:
            raise CalibrationError("no training queries")
        if not np.any(train.labels[train.mask] > 0):
            raise CalibrationError(
                "no relevant document among the training candidates: nothing to learn from. Check that "
                "the qrels' document ids are the collection's, or raise the number of candidates"
            )
        t0 = time.perf_counter()
        if dev is None or len(dev) == 0:
            if cfg.holdout > 0 and len(train) >= 10:
                perm = np.random.default_rng(cfg.seed).permutation(len(train))
                n_dev = max(1, int(round(len(train) * cfg.holdout)))
                dev, train = train.subset(np.sort(perm[:n_dev])), train.subset(np.sort(perm[n_dev:]))
            else:
                dev = train
        dim = train.query_vectors.shape[1]
        probe = cls._blank(cfg, dim, fingerprint)
        x_tr = probe.features(train.query_vectors, train.window(cfg.window))
        x_dev = probe.features(dev.query_vectors, dev.window(cfg.window))
        mu = x_tr.mean(axis=0)
        sd = x_tr.std(axis=0)
        sd = np.where(sd > 1e-8, sd, 1.0)

        # a global Platt fit on g(c) (γ = 1) is where training starts
        m = train.mask
        a0, b0 = _platt(_g_numpy(cfg.g, train.scores[m], 1.0), train.labels[m])

        gen = torch.Generator().manual_seed(cfg.seed)
        f_in = x_tr.shape[1]
        bound = 1.0 / math.sqrt(f_in)
        p = {
            "w1": torch.nn.Parameter((torch.rand(cfg.hidden, f_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound),
            "b1": torch.nn.Parameter((torch.rand(cfg.hidden, generator=gen, dtype=torch.float64) * 2 - 1) * bound),
            "w2": torch.nn.Parameter(torch.zeros(2, cfg.hidden, dtype=torch.float64)),
            "b2": torch.nn.Parameter(torch.tensor([_softplus_inv(max(a0, 1e-3)), b0], dtype=torch.float64)),
            "log_gamma": torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)),
        }
        trainable = [p["w1"], p["b1"], p["w2"], p["b2"]] + ([p["log_gamma"]] if cfg.g == "power" else [])
        opt = torch.optim.Adam(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)

        def tensors(data: CalibrationData, x: np.ndarray) -> tuple[Any, ...]:
            mask = data.mask
            return (
                torch.from_numpy((x - mu) / sd),
                torch.from_numpy(np.nan_to_num(data.scores.astype(np.float64), nan=0.0)),
                torch.from_numpy(data.labels.astype(np.float64)),
                torch.from_numpy(mask.astype(np.float64)),
            )

        def loss_of(x: Any, s: Any, y: Any, mk: Any) -> Any:
            h = torch.tanh(x @ p["w1"].T + p["b1"])
            out = h @ p["w2"].T + p["b2"]
            a = torch.nn.functional.softplus(out[:, 0:1])
            if cfg.g == "linear":
                g = s
            else:
                u = ((s + 1) / 2).clamp(0.0, 1.0)
                g = {"sqrt": lambda: torch.sqrt(u + 1e-12), "square": lambda: u * u,
                     "power": lambda: (u + 1e-12) ** torch.exp(p["log_gamma"])}[cfg.g]()
            z = a * g + out[:, 1:2]
            bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y, weight=mk, reduction="sum")
            return bce / mk.sum().clamp(min=1.0)

        tr = tensors(train, x_tr)
        dv = tensors(dev, x_dev)
        best_state = {k: v.detach().clone() for k, v in p.items()}
        with torch.no_grad():
            best = float(loss_of(*dv))
        best_epoch, bad, epoch, train_loss = 0, 0, 0, float("nan")
        n = len(train)
        for epoch in range(1, cfg.epochs + 1):
            order = torch.randperm(n, generator=gen)
            total, seen = 0.0, 0
            for start in range(0, n, cfg.batch_queries):
                idx = order[start : start + cfg.batch_queries]
                batch = tuple(t[idx] for t in tr)
                opt.zero_grad()
                loss = loss_of(*batch)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                seen += len(idx)
            train_loss = total / max(seen, 1)
            with torch.no_grad():
                dev_loss = float(loss_of(*dv))
            if dev_loss < best - 1e-7:
                best, best_epoch, bad = dev_loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in p.items()}
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
        weights = {k: v.numpy().astype(np.float64) for k, v in best_state.items()}
        weights.update(mu=mu, sd=sd)
        report = TrainingReport(
            epochs=epoch, best_epoch=best_epoch, train_loss=train_loss, dev_loss=best, platt=(a0, b0),
            seconds=time.perf_counter() - t0, queries=len(train), pairs=int(train.mask.sum()),
        )
        logger.info("Cosine Adapter trained: %s", report.to_dict())
        return cls(cfg, weights, fingerprint=fingerprint, dim=dim, extra={"training": report.to_dict()})

    @classmethod
    def _blank(cls, cfg: AdapterConfig, dim: int, fingerprint: str) -> CosineAdapter:
        f_in = cfg.input_dim(dim)
        zeros = {
            "mu": np.zeros(f_in), "sd": np.ones(f_in), "w1": np.zeros((cfg.hidden, f_in)), "b1": np.zeros(cfg.hidden),
            "w2": np.zeros((2, cfg.hidden)), "b2": np.zeros(2), "log_gamma": np.zeros(1),
        }
        return cls(cfg, zeros, fingerprint=fingerprint, dim=dim)

    # -- threshold ---------------------------------------------------------------------------------
    def fit_threshold(
        self,
        data: CalibrationData,
        *,
        target_recall: float | None = None,
        target_precision: float | None = None,
        method: Literal["empirical", "conformal"] = "empirical",
    ) -> ThresholdReport:
        """Choose the global threshold τ on held-out ``data`` and keep it (``self.threshold``).

        Args:
            data: calibration queries with hard labels (not the training queries).
            target_recall: the highest τ whose pooled recall over the candidates is at least this.
            target_precision: the lowest τ whose pooled precision is at least this (most recall).
            method: ``"empirical"``, or ``"conformal"`` (conformal risk control, recall only):
                τ such that the expected per-query recall on new queries from the same distribution
                is at least ``target_recall`` (a finite-sample guarantee, Angelopoulos et al. 2022).

        Returns:
            the achieved precision, recall, F1 and share of queries answered empty on ``data``.
        """
        self._check_dim(data.query_vectors.shape[1])
        report = choose_threshold(
            self.predict(data), data, target_recall=target_recall, target_precision=target_precision, method=method
        )
        self.threshold = report.threshold
        self.threshold_report = report.to_dict()
        return report

    # -- persistence -------------------------------------------------------------------------------
    def _header(self) -> dict[str, Any]:
        return {
            "format": ADAPTER_FORMAT,
            "kind": "tamis.CosineAdapter",
            "config": self.config.model_dump(),
            "fingerprint": self.fingerprint,
            "dim": self.dim,
            "threshold": self.threshold,
            "threshold_report": self.threshold_report,
            "extra": self.extra,
        }

    def _weights_bytes(self) -> bytes:
        from safetensors.numpy import save

        return save({k: np.ascontiguousarray(v) for k, v in self.weights.items()})

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (weights as base64 safetensors): what a collection's manifest stores."""
        blob = self._weights_bytes()
        return {
            **self._header(),
            "weights": base64.b64encode(blob).decode("ascii"),
            "weights_sha256": hashlib.sha256(blob).hexdigest(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, fingerprint: str | None = None) -> CosineAdapter:
        """Inverse of `to_dict`; ``fingerprint``: the encoder it must belong to (checked)."""
        if not isinstance(data, Mapping) or "weights" not in data:
            raise CalibrationError("the stored calibration is not a tamis Cosine Adapter (no weights); re-run calibration")
        try:
            blob = base64.b64decode(data["weights"], validate=True)
        except (ValueError, TypeError) as exc:
            raise CalibrationError(f"the stored adapter weights are not valid base64 ({exc}); re-run calibration") from exc
        return cls._from_parts(data, blob, fingerprint=fingerprint, source="the collection's calibration")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``adapter.safetensors`` + ``adapter.json`` into the folder ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        blob = self._weights_bytes()
        header = {**self._header(), "weights_sha256": hashlib.sha256(blob).hexdigest()}
        for name, data in (("adapter.safetensors", blob), ("adapter.json", json.dumps(header, indent=2).encode())):
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / name)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, fingerprint: str | None = None) -> CosineAdapter:
        """Read an adapter saved with `save`.

        Args:
            path: the folder (or its ``adapter.json``).
            fingerprint: the encoder's fingerprint; another model's adapter raises `ModelMismatchError`.

        Raises:
            CalibrationError: missing, corrupted or truncated files.
        """
        folder = Path(path)
        if folder.is_file():
            folder = folder.parent
        jfile, wfile = folder / "adapter.json", folder / "adapter.safetensors"
        for f in (jfile, wfile):
            if not f.is_file():
                raise CalibrationError(f"no {f.name} in {str(folder)!r}; pass the folder written by CosineAdapter.save")
        try:
            header = json.loads(jfile.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CalibrationError(f"{str(jfile)!r} is not valid JSON ({exc}); the file is corrupted or truncated") from exc
        return cls._from_parts(header, wfile.read_bytes(), fingerprint=fingerprint, source=repr(str(folder)))

    @classmethod
    def _from_parts(cls, header: Any, blob: bytes, *, fingerprint: str | None, source: str) -> CosineAdapter:
        if not isinstance(header, Mapping) or header.get("kind") != "tamis.CosineAdapter":
            raise CalibrationError(f"{source} is not a tamis Cosine Adapter (its JSON header lacks kind='tamis.CosineAdapter')")
        if header.get("format") != ADAPTER_FORMAT:
            raise CalibrationError(
                f"{source} has adapter format {header.get('format')!r}; this tamis reads format {ADAPTER_FORMAT}. "
                "Re-run calibration with this version"
            )
        want = header.get("weights_sha256")
        if want is not None and hashlib.sha256(blob).hexdigest() != want:
            raise CalibrationError(
                f"the weights of {source} do not match their checksum ({len(blob)} bytes): the file is corrupted "
                "or truncated; re-run calibration or restore the file"
            )
        if fingerprint is not None and header.get("fingerprint") != fingerprint:
            raise ModelMismatchError(
                f"the adapter in {source} was calibrated for the model with fingerprint "
                f"{str(header.get('fingerprint'))[:12]}, not this one ({fingerprint[:12]}); an adapter only "
                "applies to the model whose cosines it was trained on. Calibrate again with this model"
            )
        try:
            from safetensors.numpy import load

            weights = load(blob)
        except Exception as exc:  # safetensors raises its own SafetensorError for a bad buffer
            raise CalibrationError(f"cannot read the weights of {source}: {exc}; the file is corrupted or truncated") from exc
        try:
            cfg = AdapterConfig(**header["config"])
            return cls(
                cfg, weights, fingerprint=str(header["fingerprint"]), dim=int(header["dim"]),
                threshold=header.get("threshold"), threshold_report=header.get("threshold_report"),
                extra=header.get("extra"),
            )
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise CalibrationError(f"{source} has an invalid adapter header ({type(exc).__name__}: {exc})") from exc


def _platt(x: np.ndarray, y: np.ndarray, *, iters: int = 100, l2: float = 1e-6) -> tuple[float, float]:
    """Logistic regression y ~ sigmoid(a x + b) by Newton's method: the global Platt fit."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    a, b = 1.0, 0.0
    pos = y.mean()
    if 0 < pos < 1:
        b = _logit(float(pos))
    for _ in range(iters):
        p = _sigmoid(a * x + b)
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
    keep = (r >= tau) & mask
    tp = int((keep & labels).sum())
    n_keep = int(keep.sum())
    p = tp / n_keep if n_keep else 1.0
    rc = tp / pos.size
    f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
    tau = float(np.clip(tau, 1e-12, 1 - 1e-12)) if np.all((probs[mask] >= 0) & (probs[mask] <= 1)) else tau
    return ThresholdReport(
        threshold=tau, method=method, target_recall=target_recall, target_precision=target_precision,
        precision=p, recall=rc, f1=f1, empty_share=float(np.mean(~keep.any(axis=1))), queries=len(data),
        kept_per_query=n_keep / max(len(data), 1), extra=extra,
    )


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
