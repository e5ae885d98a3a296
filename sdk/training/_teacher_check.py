"""Will the teacher help? Before training, the teacher re-ranks the base model's dev top 20; if that
ranks worse than the base model's own order, learning from it will likely hurt. After training,
the student is scored on the same queries, so the model card shows base, teacher and student side
by side. Works for every teacher kind, and for label-free runs on held-out pseudo-queries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tamis.data import TrainingData
from tamis.training._trainer import eval_mode

__all__ = ["TeacherCheck", "check_teacher"]

logger = logging.getLogger("tamis")

_DEPTH = 20


@dataclass
class TeacherCheck:
    """The check's sample and numbers (``result``: JSON-compatible, for the model card)."""

    qrels: dict[str, dict[str, int]]
    corpus: dict[str, str]
    queries: dict[str, str]
    result: dict[str, Any] = field(default_factory=dict)

    def add_student(self, model: Any, batch_size: int) -> dict[str, Any]:
        """Score the trained ``model`` on the check's queries (its own top 20, the same corpus sample);
        adds ``student_ndcg@10`` / ``student_mrr@10`` and the share of the teacher's gain it kept."""
        from tamis.evaluation import exact_search, ir_metrics

        with eval_mode(model):
            run = exact_search(model, self.corpus, self.queries, k=_DEPTH, batch_size=batch_size)
        m = ir_metrics(run, self.qrels)
        r = self.result
        r["student_ndcg@10"], r["student_mrr@10"] = m["nDCG@10"], m["MRR@10"]
        gain = r["teacher_ndcg@10"] - r["base_ndcg@10"]
        if gain > 1e-9:
            r["kept_of_teacher_gain"] = (m["nDCG@10"] - r["base_ndcg@10"]) / gain
        return r


def check_teacher(
    model: Any, teacher: Any | None, dev: TrainingData | None, cfg: Any, *, on: str = "dev"
) -> TeacherCheck | None:
    """Compare the teacher's re-ranking of ``model``'s dev top 20 with ``model``'s own order (``on``:
    ``"dev"`` or ``"pseudo-queries"``, what the queries are); warn when the teacher ranks worse."""
    if teacher is None or dev is None or not cfg.teacher_check_queries:
        return None
    from tamis.evaluation import exact_search, ir_metrics, sample_split

    qrels, corpus = sample_split(dev, max_queries=cfg.teacher_check_queries, max_documents=cfg.dev_documents, seed=cfg.seed)
    if not qrels:
        return None
    queries = {q: dev.queries[q] for q in qrels}
    with eval_mode(model):
        run = exact_search(model, corpus, queries, k=_DEPTH, batch_size=cfg.encode_batch_size)
    pairs = [(q, d) for q, docs in run.items() for d in docs]
    logits = teacher.logits([(queries[q], corpus[d]) for q, d in pairs])
    rerun: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(pairs, logits.tolist(), strict=True):
        rerun.setdefault(q, {})[d] = s
    base, taught = ir_metrics(run, qrels), ir_metrics(rerun, qrels)
    result: dict[str, Any] = {
        "on": on, "teacher_kind": getattr(teacher, "kind", "cross-encoder"),
        "queries": float(len(qrels)), "base_ndcg@10": base["nDCG@10"], "teacher_ndcg@10": taught["nDCG@10"],
        "base_mrr@10": base["MRR@10"], "teacher_mrr@10": taught["MRR@10"],
    }
    if taught["nDCG@10"] < base["nDCG@10"]:
        logger.warning(
            "teacher %s (%s) re-ranks the base model's top 20 worse than the base model itself on %s (nDCG@10 "
            "%.3f < %.3f on %d queries): learning from it will likely hurt; use a stronger teacher (a bigger "
            "cross-encoder or embedding model, an ensemble) or train it longer",
            teacher.name, result["teacher_kind"], on, taught["nDCG@10"], base["nDCG@10"], len(qrels),
        )
    return TeacherCheck(qrels=qrels, corpus=corpus, queries=queries, result=result)
