"""The teacher: a cross-encoder whose scores are cached on disk (`TeacherScorer`), how a folder is
recognised as a cross-encoder, and the check that the teacher re-ranks better than the student's base.
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

from tamis._errors import ModelError
from tamis._math import sigmoid
from tamis.data import TrainingData
from tamis.training._config import TrainConfig
from tamis.training._trainer import eval_mode

__all__ = ["TeacherScorer", "check_teacher"]

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
    if (path / "modules.json").is_file() and any(
        p.name.endswith("Pooling") for p in path.iterdir() if p.is_dir()
    ):
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


class TeacherScorer:
    """A cross-encoder teacher whose scores (logits) are cached on disk, so a rerun or a resumed
    run never scores a (query, document) pair twice.

    The cache is JSON lines, one line per scored chunk, appended and flushed as scoring goes:
    ``{"k": [pair keys], "s": [logits]}``, in ``<cache_dir>/teacher-scores/<teacher fingerprint>.jsonl``.
    A line cut short by a crash is ignored on the next load.

    Attributes:
        computed: pairs scored by the model in this process.
        reused: pairs answered from the cache.
    """

    chunk = 512
    #: where the scoring runs, when not in this process: ``runner(source, pairs, batch_size=, chunk=)``
    #: yields the logits of ``pairs`` ``chunk`` at a time, in order (`tamis.distributed.RayPairScorer`
    #: scores them on a Ray actor pool); the cache stays here, written chunk by chunk as they come
    runner: Callable[..., Iterator[np.ndarray]] | None = None

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
                "one output; it looks like a bi-encoder or another kind of model); pass a cross-encoder "
                "folder, e.g. one made by `tamis train-reranker DATA --out DIR`"
            )
        self.name = os.fspath(model)
        self.source = source
        self._device = resolve_device(device)
        self._batch_size = batch_size
        self._max_len = max_seq_length
        self._progress = progress
        self._model: Any = None
        self.fingerprint = folder_fingerprint(path) if path.is_dir() else hashlib.sha256(source.encode()).hexdigest()[:32]
        self.cache_file = Path(cache_dir) / "teacher-scores" / f"{self.fingerprint}.jsonl"
        self._scores: dict[str, float] = {}
        self._load_cache()
        self.computed = 0
        self.reused = 0

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

    def _load_cache(self) -> None:
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

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Teacher logits of (query, document) pairs, from the cache or computed (and cached)."""
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
        """sigmoid(logits): the teacher's probability that each document is relevant."""
        return sigmoid(self.logits(pairs))

    def _compute(self, todo: dict[str, tuple[str, str]]) -> None:
        import torch

        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        items = list(todo.items())
        bar = None
        if self._progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc="teacher scoring", unit="pair")
        remote = None if self.runner is None else self.runner(
            self.source, [p for _, p in items], batch_size=self._batch_size, chunk=self.chunk
        )
        with open(self.cache_file, "a", encoding="utf-8") as fh:
            for start in range(0, len(items), self.chunk):
                part = items[start : start + self.chunk]
                out = next(remote) if remote is not None else self.model.predict(
                    [p for _, p in part], batch_size=self._batch_size, activation_fn=torch.nn.Identity(),
                    show_progress_bar=False, convert_to_numpy=True,
                )
                scores = [float(x) for x in np.asarray(out, dtype=np.float64).reshape(-1)]
                if any(not math.isfinite(s) for s in scores):
                    raise ModelError(f"teacher {self.name!r} gave a non-finite score; check the model")
                fh.write(json.dumps({"k": [k for k, _ in part], "s": scores}) + "\n")
                fh.flush()
                self._scores.update((k, s) for (k, _), s in zip(part, scores, strict=True))
                self.computed += len(part)
                if bar is not None:
                    bar.update(len(part))
        if bar is not None:
            bar.close()


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


def check_teacher(
    model: Any, teacher: TeacherScorer | None, dev: TrainingData | None, cfg: TrainConfig
) -> dict[str, float] | None:
    """Is the teacher worth learning from? Compare its re-ranking of the base model's dev top 20
    with the base order; warn when it is worse."""
    if teacher is None or dev is None or not cfg.teacher_check_queries:
        return None
    from tamis.evaluation import exact_search, ir_metrics, sample_split

    qrels, corpus = sample_split(dev, max_queries=cfg.teacher_check_queries, max_documents=cfg.dev_documents, seed=cfg.seed)
    with eval_mode(model):
        run = exact_search(model, corpus, {q: dev.queries[q] for q in qrels}, k=20, batch_size=cfg.encode_batch_size)
    pairs = [(q, d) for q, docs in run.items() for d in docs]
    logits = teacher.logits([(dev.queries[q], corpus[d]) for q, d in pairs])
    rerun: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(pairs, logits.tolist(), strict=True):
        rerun.setdefault(q, {})[d] = s
    base, taught = ir_metrics(run, qrels), ir_metrics(rerun, qrels)
    check = {
        "queries": float(len(qrels)), "base_ndcg@10": base["nDCG@10"], "teacher_ndcg@10": taught["nDCG@10"],
        "base_mrr@10": base["MRR@10"], "teacher_mrr@10": taught["MRR@10"],
    }
    if taught["nDCG@10"] < base["nDCG@10"]:
        logger.warning(
            "teacher %s re-ranks the base model's dev top 20 worse than the base model itself (nDCG@10 %.3f < %.3f "
            "on %d queries): learning from it will likely hurt; train the teacher longer or on more data",
            teacher.name, taught["nDCG@10"], base["nDCG@10"], len(qrels),
        )
    return check
