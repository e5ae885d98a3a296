"""The bi-encoder recipes: the training examples of each method (contrastive, distill,
contrastive+distill, augmented) and the loss the student learns them with.

Each ``*_examples`` function returns (a shuffled ``datasets.Dataset`` or ``DatasetDict``, the number of
examples); `examples` picks the one of ``cfg.method``.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from tamis._errors import DataError
from tamis.data import TrainingData
from tamis.training._config import TrainConfig
from tamis.training._data import (
    Candidates,
    drop_copies_of_positives,
    drop_false_negatives,
    silver_pairs,
    silver_query_pool,
    top_up_negatives,
)
from tamis.training._teacher import Teacher as TeacherScorer

__all__ = [
    "augmented_examples", "contrastive_distill_examples", "contrastive_examples", "distill_examples", "examples",
    "guarded_lists", "list_dataset", "student_loss",
]

logger = logging.getLogger("tamis")


def contrastive_examples(td: TrainingData, mined: Candidates, teacher: TeacherScorer | None, cfg: TrainConfig) -> tuple[Any, int]:
    """(query, positive, ``num_negatives`` hard negatives) rows: the mined candidates after the
    false-negative guard (the teacher's, or ``skip_top``), topped up with random documents."""
    from datasets import Dataset

    rng = random.Random(cfg.seed)
    docs = list(td.corpus)
    positives = td.positives()
    probs: dict[tuple[str, str], float] = {}
    # the guard needs the teacher only on the candidates that can become negatives: a prefix of
    # each list a few times longer than the negatives taken (teacher scoring is the costly part)
    window = max(4 * cfg.num_negatives, cfg.num_negatives + 8)
    mined = {q: c[:window] for q, c in mined.items()} if teacher is not None else mined
    if teacher is not None:
        pairs = sorted({(q, d) for q, pos in positives.items() for d in list(pos) + [c for c, _ in mined.get(q, [])]})
        p = teacher.probabilities([(td.queries[q], td.corpus[d]) for q, d in pairs])
        probs = dict(zip(pairs, p.tolist(), strict=True))
    cols: dict[str, list[str]] = {"anchor": [], "positive": []} | {f"negative_{i + 1}": [] for i in range(cfg.num_negatives)}
    dropped = 0
    for q, pos in positives.items():
        cands = drop_copies_of_positives(mined.get(q, []), pos, td.corpus)
        for p in pos:
            if teacher is not None:
                kept = drop_false_negatives(
                    cands, teacher_probability={d: probs[(q, d)] for d, _ in cands},
                    positive_probability=probs[(q, p)], margin=cfg.false_negative_margin,
                )
            else:
                kept = drop_false_negatives(cands, skip_top=cfg.skip_top)
            dropped += len(cands) - len(kept) - (cfg.skip_top if teacher is None else 0)
            negs = top_up_negatives([d for d, _ in kept], cfg.num_negatives, set(pos), docs, rng)
            cols["anchor"].append(td.queries[q])
            cols["positive"].append(td.corpus[p])
            for i, d in enumerate(negs):
                cols[f"negative_{i + 1}"].append(td.corpus[d])
    if teacher is not None:
        logger.info("false-negative guard: dropped %d candidate negatives the teacher rates near the positive", dropped)
    ds = Dataset.from_dict(cols).shuffle(seed=cfg.seed)
    return ds, len(ds)


def distill_examples(td: TrainingData, mined: Candidates, teacher: TeacherScorer | None, cfg: TrainConfig) -> tuple[Any, int]:
    """(query, positive + ``candidates - 1`` negatives, the teacher's logits of each) rows."""
    from datasets import Dataset

    assert teacher is not None
    rng = random.Random(cfg.seed)
    docs = list(td.corpus)
    n_neg = cfg.candidates - 1
    lists: list[tuple[str, list[str]]] = []
    for q, pos in td.positives().items():
        for p in pos:
            cands = drop_copies_of_positives(mined.get(q, []), pos, td.corpus)
            negs = top_up_negatives([d for d, _ in cands], n_neg, set(pos), docs, rng)
            lists.append((q, [p, *negs]))
    pairs = [(td.queries[q], td.corpus[d]) for q, ds in lists for d in ds]
    logits = teacher.logits(pairs).reshape(len(lists), cfg.candidates)
    cols: dict[str, list[Any]] = {"query": []} | {f"document_{i}": [] for i in range(cfg.candidates)} | {"label": []}
    for (q, ds), row in zip(lists, logits, strict=True):
        cols["query"].append(td.queries[q])
        for i, d in enumerate(ds):
            cols[f"document_{i}"].append(td.corpus[d])
        cols["label"].append([float(x) for x in row])
    ds_ = Dataset.from_dict(cols).shuffle(seed=cfg.seed)
    return ds_, len(ds_)


#: (query text, positive text or None, candidate texts best first, texts to top up with)
ListItem = tuple[str, "str | None", list[str], list[str]]


def guarded_lists(items: list[ListItem], teacher: Any, cfg: TrainConfig) -> list[tuple[str, list[str]]]:
    """(query, [positive, ``candidates - 1`` negatives]) lists with the teacher's false-negative guard.

    The teacher rates each query's positive and its first ``candidates + 7`` candidates; a candidate
    within ``false_negative_margin`` of the positive's probability (or above it) is dropped; the
    list is topped up from the item's extra texts. Without a positive (unjudged queries), the
    teacher's best candidate stands in for it.

    Raises:
        DataError: too few documents to fill a list.
    """
    n_neg = cfg.candidates - 1
    window = n_neg + 8
    pairs: list[tuple[str, str]] = []
    for q, p, cands, _ in items:
        if p is not None:
            pairs.append((q, p))
        pairs.extend((q, c) for c in cands[:window])
    probs = dict(zip(pairs, teacher.probabilities(pairs).tolist(), strict=True)) if pairs else {}
    out: list[tuple[str, list[str]]] = []
    dropped = 0
    for q, p, cands, extra in items:
        win = cands[:window]
        if p is None:
            if not win:
                continue
            p = max(win, key=lambda c: probs[(q, c)])
        limit = probs[(q, p)] - cfg.false_negative_margin
        kept = [c for c in win if c != p and probs[(q, c)] <= limit]
        dropped += sum(1 for c in win if c != p) - len(kept)
        negs = list(dict.fromkeys(kept))[:n_neg]
        for e in extra:
            if len(negs) >= n_neg:
                break
            if e != p and e not in negs:
                negs.append(e)
        if len(negs) < n_neg:
            raise DataError(f"the corpus is too small to fill lists of {cfg.candidates} documents; lower candidates")
        out.append((q, [p, *negs]))
    logger.info("false-negative guard: dropped %d candidates the teacher rates near the positive", dropped)
    return out


def list_dataset(lists: list[tuple[str, list[str]]], teacher: Any, cfg: TrainConfig) -> tuple[Any, int]:
    """(query, document_0 … document_n-1, the teacher's scores of each) rows, shuffled."""
    from datasets import Dataset

    pairs = [(q, d) for q, ds in lists for d in ds]
    logits = teacher.logits(pairs).reshape(len(lists), cfg.candidates) if lists else []
    cols: dict[str, list[Any]] = {"query": []} | {f"document_{i}": [] for i in range(cfg.candidates)} | {"label": []}
    for (q, ds), row in zip(lists, logits, strict=True):
        cols["query"].append(q)
        for i, d in enumerate(ds):
            cols[f"document_{i}"].append(d)
        cols["label"].append([float(x) for x in row])
    if not cols["query"]:
        raise DataError("no training list could be built (no query has candidates)")
    ds_ = Dataset.from_dict(cols).shuffle(seed=cfg.seed)
    return ds_, len(ds_)


def contrastive_distill_examples(
    td: TrainingData, mined: Candidates, teacher: TeacherScorer | None, cfg: TrainConfig
) -> tuple[Any, int]:
    """(query, positive + ``candidates - 1`` guarded hard negatives, the teacher's scores) rows: the
    contrastive loss learns the gold positive against the negatives, the KL term the teacher's order."""
    assert teacher is not None
    rng = random.Random(cfg.seed)
    docs = list(td.corpus)
    items: list[ListItem] = []
    for q, pos in td.positives().items():
        cands = [td.corpus[d] for d, _ in drop_copies_of_positives(mined.get(q, []), pos, td.corpus)]
        for p in pos:
            extra = [td.corpus[d] for d in top_up_negatives([], cfg.candidates - 1, set(pos), docs, rng, required=False)]
            items.append((td.queries[q], td.corpus[p], cands, extra))
    return list_dataset(guarded_lists(items, teacher, cfg), teacher, cfg)


def augmented_examples(td: TrainingData, mined: Candidates, teacher: TeacherScorer | None, cfg: TrainConfig) -> tuple[Any, int]:
    """Gold (query, positive) pairs and BM25 silver pairs scored by the teacher, as two datasets."""
    from datasets import Dataset, DatasetDict

    assert teacher is not None
    positives = td.positives()
    gold = {"anchor": [], "positive": []}
    for q, pos in positives.items():
        for p in pos:
            gold["anchor"].append(td.queries[q])
            gold["positive"].append(td.corpus[p])
    pool = silver_query_pool(td)
    n = cfg.silver_queries or len(positives)
    rng = random.Random(cfg.seed)
    rng.shuffle(pool)
    chosen = pool[:n]
    pairs = silver_pairs(td, chosen, per_query=cfg.silver_per_query)
    probs = teacher.probabilities([(td.queries[q], td.corpus[d]) for q, d in pairs])
    silver = {
        "sentence1": [td.queries[q] for q, _ in pairs],
        "sentence2": [td.corpus[d] for _, d in pairs],
        "score": [float(p) for p in probs],
    }
    ds = DatasetDict({
        "gold": Dataset.from_dict(gold).shuffle(seed=cfg.seed),
        "silver": Dataset.from_dict(silver).shuffle(seed=cfg.seed),
    })
    return ds, len(ds["gold"]) + len(ds["silver"])


def examples(td: TrainingData, mined: Candidates, teacher: TeacherScorer | None, cfg: TrainConfig) -> tuple[Any, int]:
    """The training examples of ``cfg.method`` (see the ``*_examples`` functions)."""
    build = {"contrastive": contrastive_examples, "distill": distill_examples,
             "contrastive+distill": contrastive_distill_examples, "augmented": augmented_examples}
    return build[cfg.method](td, mined, teacher, cfg)


def student_loss(model: Any, cfg: TrainConfig) -> Any:
    """The loss of ``cfg.method`` (MNRL, listwise KL or MarginMSE, MNRL + KL, MNRL + CoSENT), wrapped in
    MatryoshkaLoss when ``cfg.matryoshka_dims`` is set."""
    from sentence_transformers.sentence_transformer import losses

    def mnrl() -> Any:
        kw = {"scale": cfg.scale, "directions": tuple(cfg.directions)}
        if cfg.mini_batch_size:
            return losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=cfg.mini_batch_size, **kw)
        return losses.MultipleNegativesRankingLoss(model, **kw)

    if cfg.method == "contrastive":
        loss: Any = mnrl()
    elif cfg.method == "contrastive+distill":
        from tamis.training._losses import ListwiseDistillLoss

        loss = ListwiseDistillLoss(
            model, teacher_temperature=cfg.teacher_temperature, student_temperature=cfg.student_temperature,
            kl_weight=cfg.distill_weight, infonce_weight=1.0, infonce_scale=cfg.scale, directions=tuple(cfg.directions),
            teacher_scores=cfg.teacher_scores,
        )
    elif cfg.method == "distill":
        if cfg.distill_loss == "margin_mse":
            from sentence_transformers.util import pairwise_cos_sim

            loss = losses.MarginMSELoss(model, similarity_fct=pairwise_cos_sim)
        else:
            from tamis.training._losses import ListwiseDistillLoss

            loss = ListwiseDistillLoss(
                model, teacher_temperature=cfg.teacher_temperature, student_temperature=cfg.student_temperature,
                infonce_weight=cfg.infonce_weight, directions=tuple(cfg.directions),
                teacher_scores=cfg.teacher_scores,
            )
    else:
        loss = {"gold": mnrl(), "silver": losses.CoSENTLoss(model)}
    if cfg.matryoshka_dims:
        dims = list(cfg.matryoshka_dims)
        if isinstance(loss, dict):
            loss = {k: losses.MatryoshkaLoss(model, v, matryoshka_dims=dims) for k, v in loss.items()}
        else:
            loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims)
    return loss
