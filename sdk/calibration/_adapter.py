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
on a dev split (`tamis.calibration._train`). Training is seeded and deterministic on CPU. Inference is
numpy (no torch).

Saved as safetensors (weights) + JSON (configuration, threshold, the encoder's fingerprint).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import ValidationError

from tamis._errors import CalibrationError, ConfigError, ModelMismatchError
from tamis._math import sigmoid
from tamis.calibration._config import AdapterConfig, make_config
from tamis.calibration._data import CalibrationData
from tamis.calibration._features import ceil_float32, g_forward, g_inverse, logit, mlp_inputs, softplus
from tamis.calibration._threshold import ThresholdReport, choose_threshold
from tamis.calibration._train import train_weights

__all__ = ["ADAPTER_FORMAT", "CosineAdapter"]

ADAPTER_FORMAT = 1


class CosineAdapter:
    """Calibrated, query-dependent relevance: r = sigmoid(a(q)·g(c) + b(q)), with one threshold τ.

    Build one with `CosineAdapter.fit`, then `fit_threshold` (or all at once with
    `tamis.calibration.calibrate`, which also stores it with the collection so that searches filter by it).

    Example:
        >>> train = CalibrationData.from_collection(col, queries, qrels)          # doctest: +SKIP
        >>> adapter = CosineAdapter.fit(train, dev, fingerprint=col.encoder.fingerprint)  # doctest: +SKIP
        >>> adapter.fit_threshold(dev, target_recall=0.9)                           # doctest: +SKIP
        >>> col.set_adapter(adapter)                                                # doctest: +SKIP
    """

    WEIGHT_NAMES = ("mu", "sd", "w1", "b1", "w2", "b2", "log_gamma")
    #: the query-time stage (registered under ``tamis.stages``) that filters a collection's searches by the adapter
    stage: ClassVar[str] = "relevance"

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
        """The exponent γ of the ``power`` form of g (learned; unused by the other forms)."""
        return float(np.exp(self.weights["log_gamma"].reshape(-1)[0]))

    @property
    def needs_window(self) -> bool:
        """Whether a query's top-``window`` scores are an input (the feature window query)."""
        return self.config.use_score_features

    # -- inference (numpy) -------------------------------------------------------------------------
    def features(self, query_vectors: np.ndarray | None, window_scores: np.ndarray | None) -> np.ndarray:
        """Raw MLP inputs: [query embedding][score-list features], as configured."""
        return mlp_inputs(self.config, self.dim, query_vectors, window_scores)

    def params(self, query_vectors: np.ndarray | None = None, window_scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(a(q), b(q)) for each query: a > 0 is the slope, b the offset of the logit."""
        w = self.weights
        x = (self.features(query_vectors, window_scores) - w["mu"]) / w["sd"]
        h = np.tanh(x @ w["w1"].T + w["b1"])
        out = h @ w["w2"].T + w["b2"]
        return softplus(out[:, 0]), out[:, 1]

    def relevance(
        self, scores: np.ndarray, query_vectors: np.ndarray | None = None, window_scores: np.ndarray | None = None
    ) -> np.ndarray:
        """Probabilities of relevance for raw cosines ``scores`` (n, m) of n queries (NaN stays NaN)."""
        return self.relevance_from_params(scores, *self.params(query_vectors, window_scores))

    def relevance_from_params(self, scores: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """`relevance` with (a, b) from `params` already computed."""
        s = np.asarray(scores, dtype=np.float64)
        return sigmoid(a[:, None] * g_forward(self.config.g, s, self.gamma) + b[:, None])

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
        tau = self.tau(threshold)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            y = (logit(tau) - b) / a
        return ceil_float32(g_inverse(self.config.g, y, self.gamma))

    threshold_for = cutoffs

    def tau(self, threshold: float | None = None) -> float:
        """The relevance threshold to apply: ``threshold`` when given, else the adapter's own (``self.threshold``).

        Raises:
            CalibrationError: no ``threshold`` given and the adapter has none yet.
            ConfigError: the threshold is not a probability strictly between 0 and 1.
        """
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
        cfg = make_config(config, overrides)
        weights, report = train_weights(train, dev, cfg)
        dim = train.query_vectors.shape[1]
        return cls(cfg, weights, fingerprint=fingerprint, dim=dim, extra={"training": report.to_dict()})

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
        threshold = header.get("threshold")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0
        ):
            raise CalibrationError(
                f"{source} has an invalid threshold {threshold!r} (a probability in [0, 1] or null); calibrate again"
            )
        try:
            cfg = AdapterConfig(**header["config"])
            return cls(
                cfg, weights, fingerprint=str(header["fingerprint"]), dim=int(header["dim"]),
                threshold=header.get("threshold"), threshold_report=header.get("threshold_report"),
                extra=header.get("extra"),
            )
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise CalibrationError(f"{source} has an invalid adapter header ({type(exc).__name__}: {exc})") from exc
