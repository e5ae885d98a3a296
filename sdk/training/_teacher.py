"""Teachers: whatever scores (query, document) pairs better than the student, behind one interface.

`Teacher` is the interface and the shared on-disk score cache; the kinds here are a cross-encoder
(`CrossEncoderTeacher`, also known as `TeacherScorer`) and a bi-encoder (`BiEncoderTeacher`, score =
cosine / temperature). A remote ``/rerank`` server and a weighted ensemble are in
`tamis.training._teacher_kinds`, which also parses ``--teacher`` specs (`load_teacher`).

Every kind does its work in `Teacher.score_batch` — "score these pairs", no cache, no state that
matters — so the scoring can be farmed out (a pool of workers) without touching the cache logic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tamis._errors import ConfigError, ModelError
from tamis._math import sigmoid

__all__ = [
    "BiEncoderTeacher", "CrossEncoderTeacher", "Teacher", "TeacherScorer", "folder_fingerprint",
    "is_bi_encoder_folder", "is_cross_encoder_folder",
]

logger = logging.getLogger("tamis")


def is_cross_encoder_folder(path: Path) -> bool:
    """True if ``path`` holds a cross-encoder: a sentence-transformers CrossEncoder, or a Hugging
    Face model with a sequence-classification head and one output."""
    st_cfg = path / "config_sentence_transformers.json"
    if st_cfg.is_file():
        try:
            kind = json.loads(st_cfg.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError):
            kind = None
        if kind is not None:
            return kind == "CrossEncoder"
    if is_bi_encoder_folder(path):
        return False
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        conf = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    archs = conf.get("architectures") or []
    n_labels = len(conf.get("id2label") or {"0": ""})
    return any(str(a).endswith("ForSequenceClassification") for a in archs) and n_labels == 1


def is_bi_encoder_folder(path: Path) -> bool:
    """True if ``path`` holds a sentence-transformers bi-encoder (modules.json with a Pooling module)."""
    modules = path / "modules.json"
    if not modules.is_file():
        return False
    try:
        kinds = [str(m.get("type", "")) for m in json.loads(modules.read_text(encoding="utf-8"))]
    except (OSError, ValueError, AttributeError):
        return False
    return any(k.endswith("Pooling") for k in kinds)


def folder_fingerprint(path: Path) -> str:
    """sha256 over the names and bytes of a model folder's weight and config files."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".json", ".bin", ".txt", ".model") and f.name != "README.md":
            h.update(str(f.relative_to(path)).encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:32]


class Teacher:
    """A teacher: scores (query, document) pairs, cached on disk under its fingerprint.

    The cache is JSON lines, one line per scored chunk, appended and flushed as scoring goes:
    ``{"k": [pair keys], "s": [scores]}``, in ``<cache_dir>/teacher-scores/<fingerprint>.jsonl``.
    A line cut short by a crash is ignored on the next load, so an interrupted run rescoring
    loses at most one chunk. The fingerprint says what scores: the model's weights (folders),
    its name (hub models), the server and the model it reports (remote) — so two kinds never
    share a file, and the same model reached twice does.

    Subclasses set ``kind``, ``name`` and ``fingerprint`` and implement `score_batch`.

    Attributes:
        computed: pairs scored by the model in this process.
        reused: pairs answered from the cache.
    """

    kind = "teacher"
    #: pairs per cache line (and per `score_batch` call)
    chunk = 512
    name: str
    fingerprint: str
    #: where the scoring runs, when not in this process: ``runner(source, pairs, batch_size=, chunk=)``
    #: yields the logits of ``pairs`` ``chunk`` at a time, in order (`tamis.distributed.RayPairScorer`
    #: scores a cross-encoder's on a Ray actor pool); the cache stays here, written chunk by chunk as they come
    runner: Callable[..., Iterator[np.ndarray]] | None = None

    def _open_cache(self, cache_dir: str | os.PathLike[str], progress: bool) -> None:
        self.cache_file = Path(cache_dir) / "teacher-scores" / f"{self.fingerprint}.jsonl"
        self._progress = progress
        self._scores: dict[str, float] = {}
        self.computed = 0
        self.reused = 0
        if not self.cache_file.is_file():
            return
        with open(self.cache_file, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                    keys, scores = rec["k"], rec["s"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash
                if isinstance(keys, list) and isinstance(scores, list) and len(keys) == len(scores):
                    self._scores.update(zip(keys, scores, strict=True))

    @staticmethod
    def key(query: str, document: str) -> str:
        return hashlib.blake2b(f"{query}\x1f{document}".encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()

    def score_batch(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The teacher's raw scores of ``pairs`` (no cache): the one method a kind implements."""
        raise NotImplementedError

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The teacher's raw scores of (query, document) pairs, from the cache or computed (and cached)."""
        keys = [self.key(q, d) for q, d in pairs]
        todo: dict[str, tuple[str, str]] = {}
        for k, p in zip(keys, pairs, strict=True):
            if k not in self._scores:
                todo.setdefault(k, p)
        self.reused += len(pairs) - sum(1 for k in keys if k in todo)
        if todo:
            self._compute(todo)
        return np.array([self._scores[k] for k in keys], dtype=np.float64)

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The teacher's probability that each document is relevant: sigmoid(score) by default."""
        return sigmoid(self.logits(pairs))

    def _compute(self, todo: dict[str, tuple[str, str]]) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        items = list(todo.items())
        bar = None
        if self._progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc=f"teacher scoring ({self.kind})", unit="pair")
        remote = None
        if self.runner is not None:
            if self.kind != "cross-encoder":
                raise ConfigError(f"a runner scores cross-encoder teachers only, not a {self.kind!r} one")
            remote = self.runner(
                self.source, [p for _, p in items], batch_size=self._batch_size, chunk=self.chunk  # type: ignore[attr-defined]
            )
        with open(self.cache_file, "a", encoding="utf-8") as fh:
            for start in range(0, len(items), self.chunk):
                part = items[start : start + self.chunk]
                raw = next(remote) if remote is not None else self.score_batch([p for _, p in part])
                scores = [float(x) for x in np.asarray(raw, dtype=np.float64).reshape(-1)]
                if len(scores) != len(part) or any(not math.isfinite(s) for s in scores):
                    raise ModelError(f"teacher {self.name!r} gave {len(scores)} scores for {len(part)} pairs, "
                                     "or a non-finite one; check the model")
                fh.write(json.dumps({"k": [k for k, _ in part], "s": scores}) + "\n")
                fh.flush()
                self._scores.update((k, s) for (k, _), s in zip(part, scores, strict=True))
                self.computed += len(part)
                if bar is not None:
                    bar.update(len(part))
        if bar is not None:
            bar.close()

    def describe(self) -> dict[str, Any]:
        """What the teacher is, for the model card: kind, name, fingerprint."""
        return {"kind": self.kind, "name": self.name, "fingerprint": self.fingerprint}


def _source_fingerprint(source: str, kind: str, max_seq_length: int | None = None) -> str:
    """The weights' fingerprint (a folder) or the name's hash, and the truncation when set (it changes the scores)."""
    path = Path(source)
    fp = folder_fingerprint(path) if path.is_dir() else hashlib.sha256(f"{kind}\x1f{source}".encode()).hexdigest()[:32]
    if max_seq_length is None:
        return fp
    return hashlib.sha256(f"{fp}\x1fmax_seq_length={max_seq_length}".encode()).hexdigest()[:32]


class CrossEncoderTeacher(Teacher):
    """A sentence-transformers ``CrossEncoder`` teacher (a folder or a hub name); scores are logits.

    Example:
        >>> t = CrossEncoderTeacher("./reranker", cache_dir="./cache")        # doctest: +SKIP
        >>> t.logits([("what is a lemma", "a word's dictionary form")])         # doctest: +SKIP
    """

    kind = "cross-encoder"

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str],
        device: str = "auto",
        batch_size: int = 128,
        max_seq_length: int | None = None,
        progress: bool = False,
    ) -> None:
        from tamis.encoders import resolve_device, resolve_model

        source = resolve_model(model)
        path = Path(source)
        if path.is_dir() and not is_cross_encoder_folder(path):
            raise ModelError(
                f"teacher {os.fspath(model)!r} is not a cross-encoder (no sequence-classification head with "
                "one output); pass a cross-encoder folder (e.g. one made by `tamis train-reranker DATA --out DIR`), "
                f"or 'bi-encoder:{os.fspath(model)}' to use a sentence-transformers bi-encoder as the teacher"
            )
        self.name = os.fspath(model)
        self.source = source
        self._device = resolve_device(device)
        self._batch_size = batch_size
        self._max_len = max_seq_length
        self._model: Any = None
        self.fingerprint = _source_fingerprint(source, self.kind, max_seq_length)
        self._open_cache(cache_dir, progress)

    @property
    def model(self) -> Any:
        if self._model is None:
            from sentence_transformers import CrossEncoder

            try:
                self._model = CrossEncoder(self.source, device=self._device, max_length=self._max_len)
            except (OSError, ValueError) as exc:
                raise ModelError(f"could not load teacher cross-encoder {self.name!r}: {exc}") from exc
            if getattr(self._model, "num_labels", 1) != 1:
                raise ModelError(
                    f"teacher {self.name!r} has {self._model.num_labels} outputs; a teacher must give one "
                    "relevance score per (query, document) pair"
                )
        return self._model

    def score_batch(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        import torch

        out = self.model.predict(
            list(pairs), batch_size=self._batch_size, activation_fn=torch.nn.Identity(),
            show_progress_bar=False, convert_to_numpy=True,
        )
        return [float(x) for x in np.asarray(out, dtype=np.float64).reshape(-1)]


#: the former name of `CrossEncoderTeacher`
TeacherScorer = CrossEncoderTeacher


#: fingerprint of a bi-encoder's weights -> its text embeddings, shared by the teachers of one process
_MEMOS: dict[str, dict[tuple[str, str], np.ndarray]] = {}


class BiEncoderTeacher(Teacher):
    """A sentence-transformers bi-encoder as the teacher (e.g. a bigger embedding model): the score
    of a pair is the cosine of its embeddings divided by ``temperature``.

    Each distinct text is encoded once per process, by every teacher of the same weights (a
    candidate document shared by many queries, or by several runs, costs one forward pass). Its probability of relevance (the false-negative guard's scale) is
    the cosine itself, clipped to [0, 1].

    Example:
        >>> t = BiEncoderTeacher("./all-mpnet-base-v2", cache_dir="./cache")  # doctest: +SKIP
    """

    kind = "bi-encoder"
    #: texts kept encoded in memory (about 3 KB each at 768 dimensions)
    max_memo = 200_000

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str],
        device: str = "auto",
        batch_size: int = 128,
        max_seq_length: int | None = None,
        temperature: float = 1.0,
        progress: bool = False,
    ) -> None:
        from tamis.encoders import resolve_device, resolve_model

        if not temperature > 0:
            raise ModelError(f"a bi-encoder teacher's temperature must be positive, got {temperature!r}")
        source = resolve_model(model)
        path = Path(source)
        if path.is_dir() and not is_bi_encoder_folder(path):
            raise ModelError(
                f"teacher {os.fspath(model)!r} is not a sentence-transformers bi-encoder (no modules.json with a "
                "Pooling module); pass a bi-encoder folder, or 'cross-encoder:...' for a cross-encoder"
            )
        self.name = os.fspath(model)
        self.source = source
        self.temperature = float(temperature)
        self._device = resolve_device(device)
        self._batch_size = batch_size
        self._max_len = max_seq_length
        self._model: Any = None
        base = _source_fingerprint(source, self.kind, max_seq_length)
        self._memo = _MEMOS.setdefault(base, {})
        # the temperature changes the scores, so it is part of what the cache keys on
        self.fingerprint = base if self.temperature == 1.0 else hashlib.sha256(
            f"{base}\x1f{self.temperature!r}".encode()).hexdigest()[:32]
        self._open_cache(cache_dir, progress)

    @property
    def model(self) -> Any:
        if self._model is None:
            from tamis.encoders import BiEncoder

            try:
                self._model = BiEncoder(self.source, device=self._device, dtype="float32",
                                        max_seq_length=self._max_len).model
            except (OSError, ValueError) as exc:
                raise ModelError(f"could not load teacher bi-encoder {self.name!r}: {exc}") from exc
            self._model.eval()
        return self._model

    def embed(self, texts: list[str], kind: str) -> list[np.ndarray]:
        """Unit vectors of ``texts`` (``kind``: ``"query"`` or ``"document"``), from the memo or encoded."""
        todo = list(dict.fromkeys(t for t in texts if (kind, t) not in self._memo))
        if todo:
            encode = self.model.encode_query if kind == "query" else self.model.encode_document
            vecs = np.asarray(encode(todo, batch_size=self._batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False), dtype=np.float32)
            if len(self._memo) + len(todo) > self.max_memo:
                self._memo.clear()
            self._memo.update(((kind, t), v) for t, v in zip(todo, vecs, strict=True))
            if any((kind, t) not in self._memo for t in texts):  # more texts than the memo holds
                return list(np.asarray(encode(texts, batch_size=self._batch_size, convert_to_numpy=True,
                                              normalize_embeddings=True, show_progress_bar=False), dtype=np.float32))
        return [self._memo[(kind, t)] for t in texts]

    def score_batch(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        q = np.stack(self.embed([p[0] for p in pairs], "query"))
        d = np.stack(self.embed([p[1] for p in pairs], "document"))
        cos = np.einsum("ij,ij->i", q.astype(np.float64), d.astype(np.float64))
        return (cos / self.temperature).tolist()

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return np.clip(self.logits(pairs) * self.temperature, 0.0, 1.0)
