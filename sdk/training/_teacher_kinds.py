"""The other teacher kinds — a remote ``/rerank`` server (`RerankTeacher`) and a weighted ensemble
(`EnsembleTeacher`) — and `load_teacher`, which turns a ``--teacher`` spec into a teacher.

Spec grammar (``TrainConfig.teacher``, ``tamis train --teacher``)::

    spec    := member ("," member)*            several members: an ensemble
    member  := [weight "*"] [kind ":"] source  weight: a positive number (default 1)
    kind    := "cross-encoder" | "bi-encoder" | "rerank"

Without a kind, an ``http(s)://`` URL is a ``rerank`` server, a folder is recognised by its files
(a sentence-transformers CrossEncoder or sequence-classification head: a cross-encoder; a
sentence-transformers model with a Pooling module: a bi-encoder), and any other name is taken as
a cross-encoder hub name (write ``bi-encoder:NAME`` for an embedding model).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tamis._errors import ConfigError, ModelError, TamisError
from tamis.training._teacher import (
    BiEncoderTeacher,
    CrossEncoderTeacher,
    Teacher,
    is_bi_encoder_folder,
    is_cross_encoder_folder,
)

__all__ = ["EnsembleTeacher", "RerankTeacher", "TeacherKind", "load_teacher", "parse_teacher_spec"]

TeacherKind = str  # "cross-encoder" | "bi-encoder" | "rerank"
_KINDS = ("cross-encoder", "bi-encoder", "rerank")
_MEMBER = re.compile(r"\s*(?:(?P<w>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*)?\s*(?:(?P<k>cross-encoder|bi-encoder|rerank):)?(?P<s>.+?)\s*")


class RerankTeacher(Teacher):
    """A teacher behind an HTTP ``/rerank`` endpoint (TEI, ``tamis serve --reranker``): the server's
    raw scores (logits), asked per query with up to ``batch_size`` texts a request.

    The client is tamis's ``http`` encoder (`tamis.load_encoder(url)`): retries, backoff and the API
    key handling are its. The fingerprint is the URL and the model the server reports on ``/info``
    (model id, revision, tamis's reranker name): a different model behind the same URL that
    reports the same identity would reuse the cache, so give each model its own URL or name.

    Example:
        >>> t = RerankTeacher("http://127.0.0.1:8080", cache_dir="./cache")    # doctest: +SKIP
    """

    kind = "rerank"

    def __init__(
        self,
        url: str,
        *,
        cache_dir: str | os.PathLike[str],
        batch_size: int = 32,
        api_key: str | None = None,
        progress: bool = False,
        **client_options: Any,
    ) -> None:
        from tamis.encoders import load_encoder

        self.name = url.rstrip("/")
        self._batch_size = max(1, min(batch_size, 32))  # TEI's default max_client_batch_size
        self._client = load_encoder(self.name, api_key=api_key, **client_options)
        if not hasattr(self._client, "rerank"):
            raise ConfigError(f"the encoder registered for {self.name!r} cannot rerank; a rerank teacher needs "
                              "an http(s):// URL of a TEI-compatible server")
        self.fingerprint = hashlib.sha256(f"rerank\x1f{self.name}\x1f{self._identity()}".encode()).hexdigest()[:32]
        self._open_cache(cache_dir, progress)

    def _identity(self) -> str:
        """What the server says it runs (GET /info), or "" when it does not say."""
        import httpx

        try:
            resp = httpx.get(self.name + "/info", headers=getattr(self._client, "_headers", dict)(), timeout=10.0)
            info = resp.json() if resp.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            info = {}
        tamis_info = info.get("tamis") if isinstance(info.get("tamis"), dict) else {}
        return "\x1f".join(str(x) for x in (info.get("model_id"), info.get("model_sha"), tamis_info.get("reranker")))

    def score_batch(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        by_query: dict[str, list[int]] = {}
        for i, (q, _) in enumerate(pairs):
            by_query.setdefault(q, []).append(i)
        out = [0.0] * len(pairs)
        for q, idx in by_query.items():
            for start in range(0, len(idx), self._batch_size):
                part = idx[start : start + self._batch_size]
                scores = self._client.rerank(q, [pairs[i][1] for i in part], raw_scores=True)
                for i, s in zip(part, scores, strict=True):
                    out[i] = float(s)
        return out


class EnsembleTeacher:
    """A weighted ensemble of teachers: each member's scores are z-normalised per query (over the
    documents of that query in one call — a candidate list), then summed with the weights.

    Each member keeps its own cache (under its own fingerprint), so an ensemble and a single
    teacher it contains share scores. The probability of relevance (the false-negative guard)
    is the weighted mean of the members' probabilities.

    Example:
        >>> e = EnsembleTeacher([(0.7, ce_teacher), (0.3, bi_teacher)])       # doctest: +SKIP
    """

    kind = "ensemble"

    def __init__(self, members: Sequence[tuple[float, Teacher]]) -> None:
        if not members:
            raise ConfigError("an ensemble teacher needs at least one member")
        for w, _ in members:
            if not w > 0:
                raise ConfigError(f"ensemble weights must be positive, got {w!r}")
        total = float(sum(w for w, _ in members))
        self.members = [(float(w) / total, t) for w, t in members]
        self.name = ",".join(f"{w:g}*{t.kind}:{t.name}" for w, t in self.members)
        parts = sorted(f"{w:.6f}\x1f{t.fingerprint}" for w, t in self.members)
        self.fingerprint = hashlib.sha256("ensemble\x1e".join(parts).encode()).hexdigest()[:32]

    @property
    def computed(self) -> int:
        return sum(t.computed for _, t in self.members)

    @property
    def reused(self) -> int:
        return sum(t.reused for _, t in self.members)

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        groups: dict[str, list[int]] = {}
        for i, (q, _) in enumerate(pairs):
            groups.setdefault(q, []).append(i)
        out = np.zeros(len(pairs), dtype=np.float64)
        for w, teacher in self.members:
            s = teacher.logits(pairs)
            for idx in groups.values():
                v = s[idx]
                sd = v.std()
                out[idx] += w * ((v - v.mean()) / sd if sd > 1e-12 else np.zeros_like(v))
        return out

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return sum(w * t.probabilities(pairs) for w, t in self.members)  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "fingerprint": self.fingerprint,
                "members": [{"weight": w, **t.describe()} for w, t in self.members]}


def parse_teacher_spec(spec: str) -> list[tuple[float, str | None, str]]:
    """``spec`` as [(weight, kind or None, source)], one per member (see the module docstring).

    Example:
        >>> parse_teacher_spec("0.7*cross-encoder:./ce,0.3*bi-encoder:./mpnet")
        [(0.7, 'cross-encoder', './ce'), (0.3, 'bi-encoder', './mpnet')]
        >>> parse_teacher_spec("http://127.0.0.1:8080")
        [(1.0, 'rerank', 'http://127.0.0.1:8080')]
    """
    if not spec or not spec.strip():
        raise ConfigError("the teacher spec is empty; pass a cross-encoder or bi-encoder folder, a hub name or a URL")
    raw = [spec] if os.path.exists(spec) else [p for p in spec.split(",")]
    out = []
    for part in raw:
        m = _MEMBER.fullmatch(part)
        if m is None or not m.group("s"):
            raise ConfigError(f"cannot read teacher {part!r}: write [weight*][kind:]source with kind one of "
                              f"{', '.join(_KINDS)}, members separated by ','")
        kind, source = m.group("k"), m.group("s")
        if kind is None and source.startswith(("http://", "https://")):
            kind = "rerank"
        if kind == "rerank" and not source.startswith(("http://", "https://")):
            raise ConfigError(f"a rerank teacher needs an http(s):// URL, got {source!r}")
        out.append((float(m.group("w")) if m.group("w") else 1.0, kind, source))
    return out


def _kind_of(source: str) -> str:
    from tamis.encoders import resolve_model

    try:
        path = Path(resolve_model(source))
    except TamisError:
        return "cross-encoder"
    if path.is_dir():
        if is_cross_encoder_folder(path):
            return "cross-encoder"
        if is_bi_encoder_folder(path):
            return "bi-encoder"
        raise ModelError(
            f"teacher {source!r} is not a cross-encoder (no sequence-classification head with one output) nor a "
            "sentence-transformers bi-encoder (no modules.json with a Pooling module); pass one of those"
        )
    return "cross-encoder"


def load_teacher(
    spec: str,
    *,
    cache_dir: str | os.PathLike[str],
    device: str = "auto",
    batch_size: int = 128,
    max_seq_length: int | None = None,
    cosine_temperature: float = 1.0,
    api_key: str | None = None,
    progress: bool = False,
) -> Teacher | EnsembleTeacher:
    """The teacher a spec names: one kind, or an `EnsembleTeacher` of several (see the module docstring).

    Args:
        spec: e.g. ``"./reranker"``, ``"bi-encoder:./all-mpnet-base-v2"``, ``"http://127.0.0.1:8080"``,
            ``"0.5*./reranker,0.5*bi-encoder:./mpnet"``.
        cache_dir: where the scores are cached (``<cache_dir>/teacher-scores/``).
        cosine_temperature: a bi-encoder teacher's score is cosine / this.
        api_key: sent to a rerank server (never logged).

    Example:
        >>> load_teacher("0.5*./ce,0.5*bi-encoder:./mpnet", cache_dir="./cache")  # doctest: +SKIP
    """
    members = []
    for weight, kind, source in parse_teacher_spec(spec):
        kind = kind or _kind_of(source)
        if kind == "rerank":
            teacher: Teacher = RerankTeacher(source, cache_dir=cache_dir, api_key=api_key, progress=progress)
        elif kind == "bi-encoder":
            teacher = BiEncoderTeacher(source, cache_dir=cache_dir, device=device, batch_size=batch_size,
                                       max_seq_length=max_seq_length, temperature=cosine_temperature, progress=progress)
        else:
            teacher = CrossEncoderTeacher(source, cache_dir=cache_dir, device=device, batch_size=batch_size,
                                          max_seq_length=max_seq_length, progress=progress)
        members.append((weight, teacher))
    if len(members) == 1:
        return members[0][1]
    return EnsembleTeacher(members)
