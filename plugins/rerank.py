"""The ``rerank`` stage: a calibrated cross-encoder re-scores the top N and cuts at its threshold τ.

Input: a `tamis.collection.SearchRequest` of a search by text (the request carries the query texts).
Output: per query, the hits of the inner search's top ``top_n`` (unfiltered: the stages inside it
run with ``relevance_filter=False``) re-scored by the cross-encoder, ordered by it, each with
``relevance`` = sigmoid(a·logit + b) (a global Platt fit of the reranker's logits on the
collection's calibration queries), kept when relevance >= τ, at most ``k``.

Options: ``rerank=False`` skips the stage; ``min_relevance=p`` uses τ = p; ``relevance_filter=False``
returns the re-ranked top-k without the cut. Settings (`tamis.calibration.calibrate_rerank`):
``model`` (a CrossEncoder folder, a hub name, or a ``/rerank`` server URL), ``model_fingerprint``,
``fingerprint`` (the collection's model: a reranker calibrated on another model's candidates is
refused, as an adapter is), ``top_n``, ``platt`` and ``threshold``. It runs outermost (first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from tamis._errors import ConfigError, ModelMismatchError
from tamis.calibration import CrossEncoderScorer, reranker_fingerprint
from tamis.collection import Hit, SearchFn, SearchRequest

__all__ = ["Rerank"]


class Rerank:
    """Re-score the top N with a calibrated cross-encoder (registered as ``rerank``).

    Example:
        >>> col.set_stage("rerank", calibrate_rerank(col, "./reranker", q, qrels, save=False), first=True)  # doctest: +SKIP
    """

    name = "rerank"
    options = frozenset({"rerank", "min_relevance", "relevance_filter"})
    options_without_stage = frozenset({"rerank", "relevance_filter"})
    requirement = "a reranker: run `tamis calibrate --rerank MODEL` or tamis.calibration.calibrate_rerank"

    def __init__(self, settings: Mapping[str, Any], scorer: Any = None) -> None:
        self.settings = dict(settings)
        self.top_n = int(settings["top_n"])
        self.a, self.b = (float(v) for v in settings["platt"])
        self.threshold = float(settings["threshold"])
        self.scorer = scorer or CrossEncoderScorer(settings["model"])

    @classmethod
    def from_manifest(cls, settings: Mapping[str, Any], *, fingerprint: str) -> Rerank:
        """The stage of a collection's stored reranker; refuses one calibrated for another model, or a changed reranker."""
        for key in ("model", "fingerprint", "top_n", "platt", "threshold"):
            if key not in settings:
                raise ConfigError(f"the rerank stage's settings lack {key!r}; store them with calibrate_rerank")
        if settings["fingerprint"] != fingerprint:
            raise ModelMismatchError(
                f"the reranker was calibrated on the candidates of the model {str(settings['fingerprint'])[:12]}, not this "
                f"collection's ({fingerprint[:12]}); calibrate it again (`tamis calibrate --rerank`)"
            )
        if settings.get("model_fingerprint") not in (None, reranker_fingerprint(str(settings["model"]))):
            raise ModelMismatchError(
                f"the reranker {settings['model']!r} changed since it was calibrated (its files' fingerprint differs); "
                "calibrate it again"
            )
        return cls(settings)

    def __call__(self, request: SearchRequest, search: SearchFn) -> list[list[Hit]]:
        opts = request.options
        if opts.get("rerank") is False:
            return search(request)
        if request.texts is None:
            raise ConfigError(
                "the rerank stage needs the query text: search with Collection.search / search_batch, or pass "
                "rerank=False"
            )
        tau = float(opts["min_relevance"]) if opts.get("min_relevance") is not None else self.threshold
        inner = request.replace(k=max(self.top_n, request.k), options={**opts, "relevance_filter": False})
        out = []
        for text, hits in zip(request.texts, search(inner), strict=True):
            hits = hits[: self.top_n]
            logits = self.scorer.scores(text, [h.text for h in hits])
            probs = 1.0 / (1.0 + np.exp(-(self.a * logits + self.b)))
            order = np.argsort(-probs, kind="stable")
            ranked = [replace(hits[j], relevance=float(probs[j])) for j in order]
            if opts.get("relevance_filter", True):
                ranked = [h for h in ranked if h.relevance >= tau]  # type: ignore[operator]
            out.append(ranked[: request.k])
        return out
