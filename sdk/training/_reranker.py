"""Training the teacher: `train_reranker`, a cross-encoder on a BEIR folder's train qrels
(sentence-transformers' ``CrossEncoderTrainer``, BCE or ListNet over mined and random negatives).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from tamis._errors import DataError, ModelError
from tamis.data import TrainingData
from tamis.training._checkpoints import work_dir
from tamis.training._config import RerankerConfig, resolve_config
from tamis.training._data import (
    Candidates,
    drop_copies_of_positives,
    drop_false_negatives,
    mine_candidates,
    top_up_negatives,
    train_split,
)
from tamis.training._output import TrainResult, check_output, model_meta, save_model_folder
from tamis.training._trainer import cache_folder, fit, load_bi_encoder
from tamis.training._workers import MinerRef, Workers, mining_model

__all__ = ["train_reranker"]


def train_reranker(
    data: str | os.PathLike[str] | TrainingData,
    out: str | os.PathLike[str],
    config: RerankerConfig | None = None,
    *,
    workers: Workers | None = None,
    **settings: Any,
) -> TrainResult:
    """Train a cross-encoder (the teacher) on the train qrels of a BEIR folder.

    The model starts from any encoder checkpoint (default: the packaged all-MiniLM-L6-v2 with a
    fresh one-output head); each query gets ``num_negatives`` hard negatives sampled from a
    bi-encoder's top ``mining_depth`` (sentence-transformers' ``mine_hard_negatives``) and
    ``random_negatives`` drawn from the corpus; the loss is BCE over (query, document, 0/1) pairs
    or ListNet over each query's list. The folder appears at ``out`` only when complete.

    Args:
        data: a BEIR folder (or `TrainingData`).
        out: the model folder to write (absent, empty, or an older tamis model).
        config: a `RerankerConfig`; or pass its fields as keyword arguments.
        workers: where the miner's corpus encoding runs (``tamis.distributed.RayWorkers``); None: here.

    Example:
        >>> train_reranker("./scifact", "./teacher", epochs=1)      # doctest: +SKIP
    """
    cfg = resolve_config(RerankerConfig, config, settings)
    out = Path(out).expanduser()
    check_output(out)
    t0 = time.perf_counter()
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, ListNetLoss

    from tamis.encoders import resolve_device, resolve_model

    td = train_split(data, max_queries=cfg.max_train_queries, seed=cfg.seed)
    device = resolve_device(cfg.device)
    miner = load_bi_encoder(cfg.miner, device, cfg.max_seq_length)
    mined = mine_candidates(
        mining_model(miner.model, MinerRef(cfg.miner, cfg.max_seq_length, miner.fingerprint), workers), td, depth=cfg.mining_depth, batch_size=cfg.encode_batch_size,
        cache_folder=cache_folder(cfg) / "embeddings" / miner.fingerprint,
    )
    del miner
    ds = _examples(td, mined, cfg)

    import torch

    torch.manual_seed(cfg.seed)
    source = resolve_model(cfg.base)
    try:
        model = CrossEncoder(source, num_labels=1, device=device, max_length=cfg.max_seq_length)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load {cfg.base or 'all-MiniLM-L6-v2'!r} as a cross-encoder: {exc}") from exc
    if cfg.loss == "bce":
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(cfg.num_negatives + cfg.random_negatives)))
    else:
        loss = ListNetLoss(model)
    key = {"kind": "cross-encoder", "config": cfg.to_dict(), "data": td.fingerprint(), "base": source}
    work = work_dir(out, key)
    state, resume = fit(
        CrossEncoderTrainer, CrossEncoderTrainingArguments, cfg, model=model, dataset=ds, loss=loss,
        work=work, device=device, n_examples=len(ds),
    )
    model.model.eval()

    result = TrainResult(
        path=out, kind="cross-encoder", method=cfg.loss, examples=len(ds), steps=int(state.global_step),
        seconds=0.0, resumed_from=resume,
    )

    def meta() -> dict[str, Any]:
        result.seconds = time.perf_counter() - t0
        return model_meta("cross-encoder", cfg.loss, cfg, td, result)

    save_model_folder(out, work, model.save_pretrained, meta)
    return result


def _examples(td: TrainingData, mined: Candidates, cfg: RerankerConfig) -> Any:
    """The teacher's training set: (query, document, 0/1) rows for ``bce``, one (query, documents,
    labels) list per query for ``listwise``; each query's positives, ``num_negatives`` hard negatives
    sampled from its mined candidates, and ``random_negatives`` documents drawn from the corpus."""
    from datasets import Dataset

    rng = random.Random(cfg.seed)
    all_docs = list(td.corpus)
    positives = td.positives()

    def negatives(q: str, pos: set[str]) -> list[str]:
        cands = drop_copies_of_positives(mined.get(q, []), pos, td.corpus)
        window = [d for d, _ in drop_false_negatives(cands, skip_top=cfg.skip_top)]
        negs = rng.sample(window, min(cfg.num_negatives, len(window)))
        return top_up_negatives(negs, len(negs) + cfg.random_negatives, pos, all_docs, rng, required=False)

    if cfg.loss == "bce":
        rows: dict[str, list[Any]] = {"query": [], "document": [], "label": []}
        for q, pos in positives.items():
            negs = negatives(q, set(pos))
            for d, lab in [(p, 1.0) for p in pos] + [(n, 0.0) for n in negs]:
                rows["query"].append(td.queries[q])
                rows["document"].append(td.corpus[d])
                rows["label"].append(lab)
    else:
        rows = {"query": [], "docs": [], "labels": []}
        for q, pos in positives.items():
            negs = negatives(q, set(pos))
            rows["query"].append(td.queries[q])
            rows["docs"].append([td.corpus[d] for d in list(pos) + negs])
            rows["labels"].append([1.0] * len(pos) + [0.0] * len(negs))
    ds = Dataset.from_dict(rows).shuffle(seed=cfg.seed)
    if len(ds) == 0:
        raise DataError("no training examples could be built from the train split", source=str(td.root))
    return ds
