"""Calibrating a reranker: a cross-encoder's logits -> probabilities (global Platt) and a threshold τ.

`calibrate_rerank` scores each calibration query's top-``top_n`` candidates from the collection with
the cross-encoder (any sentence-transformers ``CrossEncoder`` — a local folder or a hub name — or a
remote ``/rerank`` server: TEI or ``tamis serve``), fits r = sigmoid(a·logit + b) on the labels,
chooses τ as the adapters do, and stores the ``rerank`` stage with the collection. The stage's
settings bind it to the collection's model (its fingerprint, as an adapter is) and to the reranker
(a fingerprint of its folder's files, or its name / URL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tamis._errors import ConfigError, ModelError
from tamis.calibration._data import CalibrationData
from tamis.calibration._platt import platt
from tamis.calibration._threshold import choose_threshold

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection import Collection

__all__ = ["CrossEncoderScorer", "calibrate_rerank", "reranker_fingerprint"]


def reranker_fingerprint(model: str) -> str:
    """What identifies a reranker: sha256 over a local folder's config and weight files (names and bytes),
    else over its hub name or URL."""
    path = Path(model).expanduser()
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".txt", ".model"):
                h.update(f.relative_to(path).as_posix().encode())
                h.update(f.read_bytes())
    else:
        h.update(model.encode())
    return h.hexdigest()[:32]


class CrossEncoderScorer:
    """Raw relevance logits of (query, document) pairs from a cross-encoder (local, hub name, or ``http(s)://`` server).

    Example:
        >>> scorer = CrossEncoderScorer("./my-reranker")                     # doctest: +SKIP
        >>> scorer.scores("reset password", ["To reset it ...", "Pie recipe"])  # doctest: +SKIP
    """

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 32) -> None:
        self.model = str(model)
        self.batch_size = batch_size
        self._device = device
        self._impl: Any = None

    def _load(self) -> Any:
        if self._impl is None:
            if self.model.startswith(("http://", "https://")):
                from tamis.encoders import load_encoder

                self._impl = load_encoder(self.model)
                if not hasattr(self._impl, "rerank"):
                    raise ModelError(f"{self.model!r} is not a server with a /rerank route (TEI or tamis serve)")
            else:
                from sentence_transformers import CrossEncoder

                from tamis.encoders import resolve_device

                try:
                    self._impl = CrossEncoder(self.model, device=resolve_device(self._device))
                except (OSError, ValueError) as exc:
                    raise ModelError(f"could not load the cross-encoder {self.model!r}: {exc}") from exc
                if getattr(self._impl, "num_labels", 1) != 1:
                    raise ModelError(f"the cross-encoder {self.model!r} has {self._impl.num_labels} outputs; a reranker gives one")
        return self._impl

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One raw logit per text (higher: more relevant), in input order."""
        if not texts:
            return np.zeros(0)
        impl = self._load()
        if hasattr(impl, "rerank"):
            return np.asarray(impl.rerank(query, list(texts), raw_scores=True), dtype=np.float64)
        import torch

        # Identity: the raw logit (activation_fn=None would apply the model's default, a sigmoid)
        out = impl.predict([(query, t) for t in texts], batch_size=self.batch_size, activation_fn=torch.nn.Identity(),
                           show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(out, dtype=np.float64).reshape(-1)


def calibrate_rerank(
    collection: Collection,
    model: str,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    top_n: int = 30,
    target_recall: float | None = None,
    target_precision: float | None = None,
    method: Literal["empirical", "conformal"] = "empirical",
    device: str = "auto",
    save: bool = True,
) -> dict[str, Any]:
    """Calibrate the cross-encoder ``model`` on ``collection``'s top-``top_n`` candidates and store the ``rerank`` stage.

    Returns:
        the stage's settings: ``model``, ``model_fingerprint``, ``fingerprint`` (the collection's model),
        ``top_n``, ``platt`` (a, b), ``threshold`` and ``threshold_report``.

    Example:
        >>> calibrate_rerank(col, "./reranker", queries, qrels, target_recall=0.9)   # doctest: +SKIP
        >>> col.search("reset password", k=5)   # re-scored, calibrated, cut at τ   # doctest: +SKIP
    """
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise ConfigError(f"top_n must be a positive integer, got {top_n!r}")
    if target_recall is None and target_precision is None:
        target_recall = 0.9
    ids = [q for q in queries if q in qrels]
    scorer = CrossEncoderScorer(model, device=device)
    texts = [queries[q] for q in ids]
    results = collection.search_batch(texts, top_n, relevance_filter=False, rerank=False)
    logits = np.full((len(ids), top_n), np.nan)
    labels = np.zeros((len(ids), top_n))
    for i, (q, text, hits) in enumerate(zip(ids, texts, results, strict=True)):
        logits[i, : len(hits)] = scorer.scores(text, [h.text for h in hits])
        labels[i, : len(hits)] = [1.0 if qrels[q].get(h.id, 0) > 0 else 0.0 for h in hits]
    mask = ~np.isnan(logits)
    a, b = platt(logits[mask], labels[mask])
    probs = np.where(mask, 1.0 / (1.0 + np.exp(-(a * np.nan_to_num(logits) + b))), np.nan)
    rel = np.array([float(sum(1 for g in qrels[q].values() if g > 0)) for q in ids])
    data = CalibrationData(ids, np.zeros((len(ids), 1)), np.where(mask, 0.0, np.nan), labels, None, rel)
    report = choose_threshold(probs, data, target_recall=target_recall, target_precision=target_precision, method=method)
    settings = {
        "model": str(model), "model_fingerprint": reranker_fingerprint(str(model)),
        "fingerprint": collection.encoder.fingerprint, "top_n": top_n, "platt": [float(a), float(b)],
        "threshold": report.threshold, "threshold_report": report.to_dict(),
    }
    if save:
        collection.set_stage("rerank", settings, first=True)
    return settings
