"""The hybrid adapter: the Cosine Adapter plus a BM25 term with a query-dependent, non-negative weight.

    r(q, d) = sigmoid(a(q) · c + w(q) · ln(1 + s) + b(q)),   a(q) > 0, w(q) >= 0

``c`` is the cosine, ``s`` the BM25 score (IDF by the engine); a document outside one side's top-K
prefetch takes that side's default, exactly as the engine's formula query does: for the cosine the
query's own K-th cosine (an upper bound of every cosine outside its dense top-K; the mean over the
training queries, ``dense_default``, when unknown), for BM25 the query's K-th BM25 score when its BM25
prefetch is full, else 0 (``HybridConfig.sparse_default``). ``a``, ``w``, ``b`` are the outputs
of a small MLP (softplus on ``a`` and ``w``) over features of BOTH score lists: the score-list
features of the query's top-``window`` cosines and of its top-``window`` ln(1 + BM25) scores.

At search time (the ``hybrid_relevance`` stage) the coefficients are constants of one formula
query per query (`tamis.stores.RelevanceFormula`), run with ``score_threshold = τ``: the engine
returns exactly the documents with r >= τ, scored r. Trained like the Cosine Adapter (BCE, a global
logistic fit as the start, early stopping on dev; `tamis.calibration._hybrid_train`); saved as JSON
with base64 safetensors weights.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from tamis._errors import CalibrationError, ConfigError, ModelMismatchError
from tamis._math import sigmoid
from tamis.calibration._features import softplus
from tamis.calibration._hybrid_config import HybridConfig, hybrid_features, make_hybrid_config
from tamis.calibration._hybrid_data import HybridCalibrationData
from tamis.calibration._threshold import ThresholdReport, choose_threshold

__all__ = ["HybridAdapter"]

KIND = "tamis.HybridAdapter"
FORMAT = 1


class HybridAdapter:
    """Calibrated hybrid relevance r = sigmoid(a(q)·c + w(q)·ln(1 + s) + b(q)), with one threshold τ.

    Build one with `tamis.calibration.calibrate_hybrid` (which stores it with the collection, so that
    its hybrid searches run the formula query), or `HybridAdapter.fit` + `fit_threshold`.

    Example:
        >>> adapter = calibrate_hybrid(col, queries, qrels, target_recall=0.9)   # doctest: +SKIP
        >>> col.search("error E1234", k=10)   # one formula query, hits with relevance >= τ   # doctest: +SKIP
    """

    WEIGHT_NAMES = ("mu", "sd", "w1", "b1", "w2", "b2")
    #: the query-time stage (``tamis.stages``) that runs the formula query
    stage: ClassVar[str] = "hybrid_relevance"

    def __init__(
        self, config: HybridConfig, weights: Mapping[str, np.ndarray], *, fingerprint: str, dim: int,
        dense_default: float, threshold: float | None = None, threshold_report: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        missing = set(self.WEIGHT_NAMES) - set(weights)
        if missing:
            raise CalibrationError(f"hybrid adapter weights lack {sorted(missing)}; the data is not a tamis HybridAdapter")
        self.config = config
        self.weights = {k: np.asarray(weights[k], dtype=np.float64) for k in self.WEIGHT_NAMES}
        if self.weights["w2"].shape != (3, config.hidden) or self.weights["w1"].shape[0] != config.hidden:
            raise CalibrationError(f"hybrid adapter weights have shapes {self.weights['w1'].shape}, {self.weights['w2'].shape}")
        self.fingerprint = fingerprint
        self.dim = int(dim)
        self.dense_default = float(dense_default)
        self.threshold = threshold
        self.threshold_report: dict[str, Any] = dict(threshold_report or {})
        self.extra: dict[str, Any] = dict(extra or {})

    def __repr__(self) -> str:
        return f"HybridAdapter(candidates={self.config.candidates}, threshold={self.threshold})"

    # -- inference (numpy) -------------------------------------------------------------------------
    def params(self, dense_window: np.ndarray, sparse_window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a(q), w(q), b(q)) per query from its two top-``window`` score lists (NaN padded)."""
        w = self.weights
        x = (hybrid_features(dense_window, sparse_window) - w["mu"]) / w["sd"]
        out = np.tanh(x @ w["w1"].T + w["b1"]) @ w["w2"].T + w["b2"]
        return softplus(out[:, 0]), softplus(out[:, 1]), out[:, 2]

    def floors(self, dense_floor: np.ndarray | None, n: int) -> np.ndarray:
        """Each query's cosine default: its K-th cosine (``dense_floor``), or `dense_default` where unknown."""
        if dense_floor is None:
            return np.full(n, self.dense_default)
        f = np.asarray(dense_floor, dtype=np.float64)
        return np.where(np.isnan(f), self.dense_default, f)

    def sparse_floors(self, sparse_floor: np.ndarray | None, n: int) -> np.ndarray:
        """Each query's BM25 default: its ``sparse_floor`` (see `HybridConfig.sparse_default`), 0 where unknown."""
        if sparse_floor is None or self.config.sparse_default == "zero":
            return np.zeros(n)
        return np.maximum(np.nan_to_num(np.asarray(sparse_floor, dtype=np.float64), nan=0.0), 0.0)

    def formulas(
        self, dense_window: np.ndarray, sparse_window: np.ndarray, dense_floor: np.ndarray | None = None,
        sparse_floor: np.ndarray | None = None,
    ) -> list[Any]:
        """One `tamis.stores.RelevanceFormula` per query: what the engine computes."""
        from tamis.stores import RelevanceFormula

        a, w, b = self.params(dense_window, sparse_window)
        floors, sfloors = self.floors(dense_floor, len(a)), self.sparse_floors(sparse_floor, len(a))
        return [
            RelevanceFormula(a=float(ai), w=float(wi), b=float(bi), dense_default=float(fi), sparse_default=float(si))
            for ai, wi, bi, fi, si in zip(a, w, b, floors, sfloors, strict=True)
        ]

    def relevance(
        self, dense: np.ndarray, sparse: np.ndarray, dense_window: np.ndarray, sparse_window: np.ndarray,
        dense_floor: np.ndarray | None = None, sparse_floor: np.ndarray | None = None,
    ) -> np.ndarray:
        """r for (n, M) cosines and BM25 scores (NaN: outside that side's prefetch, the default applies)."""
        a, w, b = self.params(dense_window, sparse_window)
        c = np.where(np.isnan(dense), self.floors(dense_floor, len(a))[:, None], dense)
        sparse = np.asarray(sparse, np.float64)
        s = np.log1p(np.maximum(np.where(np.isnan(sparse), self.sparse_floors(sparse_floor, len(a))[:, None], sparse), 0.0))
        return sigmoid(a[:, None] * c + w[:, None] * s + b[:, None])

    def predict(self, data: HybridCalibrationData) -> np.ndarray:
        """`relevance` of every candidate of ``data`` (NaN for padding)."""
        r = self.relevance(data.dense, data.sparse, data.dense_window, data.sparse_window, data.dense_floor,
                           data.sparse_floor)
        return np.where(data.mask, r, np.nan)

    def tau(self, threshold: float | None = None) -> float:
        """``threshold`` or the adapter's own τ, checked to be a probability in (0, 1)."""
        tau = self.threshold if threshold is None else threshold
        if tau is None:
            raise CalibrationError("this hybrid adapter has no threshold yet; call fit_threshold(...) or pass threshold=")
        if not 0.0 < float(tau) < 1.0:
            raise ConfigError(f"a relevance threshold is a probability strictly between 0 and 1, got {tau!r}")
        return float(tau)

    # -- training ----------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls, train: HybridCalibrationData, dev: HybridCalibrationData | None = None, *, fingerprint: str,
        config: HybridConfig | Mapping[str, Any] | None = None, **overrides: Any,
    ) -> HybridAdapter:
        """Train on ``train`` (BCE), early-stopping on ``dev``; the report is in ``extra["training"]``."""
        from tamis.calibration._hybrid_train import train_hybrid

        cfg = make_hybrid_config(config, overrides)
        floor = train.dense_floor[~np.isnan(train.dense_floor)]
        dense_default = float(floor.mean()) if floor.size else 0.0
        weights, report = train_hybrid(train, dev, cfg, dense_default)
        return cls(cfg, weights, fingerprint=fingerprint, dim=train.query_vectors.shape[1],
                   dense_default=dense_default, extra={"training": report})

    def fit_threshold(
        self, data: HybridCalibrationData, *, target_recall: float | None = None, target_precision: float | None = None,
        method: Literal["empirical", "conformal"] = "empirical",
    ) -> ThresholdReport:
        """Choose τ on held-out ``data`` (as `CosineAdapter.fit_threshold`) and keep it."""
        report = choose_threshold(
            self.predict(data), data.as_calibration_data(), target_recall=target_recall,
            target_precision=target_precision, method=method,
        )
        self.threshold = report.threshold
        self.threshold_report = report.to_dict()
        return report

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (weights as base64 safetensors): what a collection's manifest stores."""
        from safetensors.numpy import save

        blob = save({k: np.ascontiguousarray(v) for k, v in self.weights.items()})
        return {
            "format": FORMAT, "kind": KIND, "config": self.config.model_dump(), "fingerprint": self.fingerprint,
            "dim": self.dim, "dense_default": self.dense_default, "threshold": self.threshold,
            "threshold_report": self.threshold_report, "extra": self.extra,
            "weights": base64.b64encode(blob).decode("ascii"), "weights_sha256": hashlib.sha256(blob).hexdigest(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, fingerprint: str | None = None) -> HybridAdapter:
        """Inverse of `to_dict`; ``fingerprint``: the encoder it must belong to (checked)."""
        if not isinstance(data, Mapping) or data.get("kind") != KIND or data.get("format") != FORMAT:
            raise CalibrationError(f"the stored calibration is not a tamis HybridAdapter of format {FORMAT}; re-run calibration")
        if fingerprint is not None and data.get("fingerprint") != fingerprint:
            raise ModelMismatchError(
                f"the hybrid adapter was calibrated for the model with fingerprint {str(data.get('fingerprint'))[:12]}, "
                f"not this one ({fingerprint[:12]}); calibrate again with this model"
            )
        try:
            blob = base64.b64decode(data["weights"], validate=True)
            if hashlib.sha256(blob).hexdigest() != data.get("weights_sha256"):
                raise CalibrationError("the hybrid adapter's weights do not match their checksum; re-run calibration")
            from safetensors.numpy import load

            config = dict(data["config"])
            config.setdefault("sparse_default", "zero")  # stored before the option: trained with 0
            return cls(
                HybridConfig(**config), load(blob), fingerprint=str(data["fingerprint"]), dim=int(data["dim"]),
                dense_default=float(data["dense_default"]), threshold=data.get("threshold"),
                threshold_report=data.get("threshold_report"), extra=data.get("extra"),
            )
        except CalibrationError:
            raise
        except Exception as exc:  # base64, safetensors and pydantic raise their own types
            raise CalibrationError(f"invalid stored hybrid adapter ({type(exc).__name__}: {exc}); re-run calibration") from exc
