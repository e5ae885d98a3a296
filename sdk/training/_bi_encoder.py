"""Training the student: `train_bi_encoder`, a sentence-transformers bi-encoder fine-tuned on a BEIR
folder's train split by one of the recipes of `tamis.training._recipes` (contrastive, distill, augmented).

tamis adds the recipes and the glue, never a training loop: mining (``mine_hard_negatives``), the
false-negative guard, teacher scores cached on disk, BM25 silver pairs, LoRA / Matryoshka
wrappers, a model card with dev metrics before and after, an output folder that appears only
when complete, and a resumable checkpoint folder next to it (JSON + safetensors only, never
unpickled: see ``tamis.training._checkpoints``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tamis._errors import ConfigError
from tamis.data import TrainingData
from tamis.training._checkpoints import work_dir
from tamis.training._config import TrainConfig, resolve_config
from tamis.training._data import Candidates, dev_split, mine_candidates, train_split
from tamis.training._output import TrainResult, check_output, model_meta, save_model_folder
from tamis.training._recipes import examples, student_loss
from tamis.training._teacher_check import check_teacher
from tamis.training._teacher_kinds import load_teacher
from tamis.training._trainer import batch_sampler, cache_folder, eval_mode, fit, load_bi_encoder
from tamis.training._workers import MinerRef, Workers, mining_model, offload_teacher

__all__ = ["train_bi_encoder"]


def train_bi_encoder(
    data: str | os.PathLike[str] | TrainingData,
    out: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    workers: Workers | None = None,
    **settings: Any,
) -> TrainResult:
    """Fine-tune a sentence-transformers bi-encoder on a BEIR folder's train split.

    Methods (``TrainConfig.method``):

    * ``contrastive`` — MultipleNegativesRankingLoss (Cached with ``mini_batch_size``) on
      (query, positive, mined hard negatives); the false-negative guard drops negatives the teacher
      scores within ``false_negative_margin`` of the positive (with a teacher), or skips the top
      ``skip_top`` ranks (without one).
    * ``distill`` — the teacher scores each query's candidate list (cached on disk); the student
      learns listwise KL (CADET) or MarginMSE. With ``labels=False`` the queries are pseudo-queries
      made from the corpus (label-free domain adaptation, see `tamis.training._pseudo`).
    * ``contrastive+distill`` — the contrastive loss on the gold pairs and guarded hard negatives
      plus ``distill_weight`` x the KL to the teacher's scores of the same lists.
    * ``augmented`` — Augmented SBERT: BM25 pairs labelled by the teacher (silver, CoSENT loss)
      alongside the gold pairs (MultipleNegativesRankingLoss).

    The teacher (``TrainConfig.teacher``) is any kind `load_teacher` reads: a cross-encoder, a
    bi-encoder, a ``/rerank`` server, a weighted ensemble. Before training it re-ranks the base
    model's dev top 20 (on held-out pseudo-queries too, label-free) and a warning says when it ranks
    worse than the base; after training the student is scored on the same queries.

    The model folder appears at ``out`` only when complete, with a model card (README.md) and
    ``tamis_model.json`` holding the settings, the teacher check and the dev metrics before and after.

    Args:
        data: a BEIR folder (or `TrainingData` of its train split).
        out: the model folder to write (absent, empty, or an older tamis model).
        config: a `TrainConfig`; or pass its fields as keyword arguments.
        workers: where the teacher scoring (a cross-encoder's) and the corpus encoding for mining
            run, e.g. ``tamis.distributed.RayWorkers(RayConfig(num_actors=4))``; None: in this process.

    Example:
        >>> train_bi_encoder("./scifact", "./student", method="distill", teacher="./teacher")  # doctest: +SKIP
    """
    cfg = resolve_config(TrainConfig, config, settings)
    out = Path(out).expanduser()
    check_output(out)
    t0 = time.perf_counter()
    from tamis.encoders import resolve_device

    device = resolve_device(cfg.device)
    cache = cache_folder(cfg)
    teacher = None
    if cfg.teacher:
        teacher = load_teacher(
            cfg.teacher, cache_dir=cache, device=device, batch_size=cfg.encode_batch_size,
            max_seq_length=cfg.max_seq_length, cosine_temperature=cfg.teacher_cosine_temperature,
            api_key=os.environ.get("TAMIS_TEACHER_API_KEY"), progress=cfg.progress,
        )
        offload_teacher(teacher, workers)
    lf = None
    if cfg.labels:
        td = train_split(data, max_queries=cfg.max_train_queries, seed=cfg.seed)
        dev = dev_split(td) if cfg.dev_queries != 0 else None
    else:
        from tamis.training._label_free import label_free_data

        lf = label_free_data(data, cfg, device)
        td, dev = lf.train, lf.dev if lf.dev is not None else lf.pseudo_dev

    import torch

    torch.manual_seed(cfg.seed)
    enc = load_bi_encoder(cfg.base, device, cfg.max_seq_length)
    model = enc.model
    miner = mining_model(model, MinerRef(cfg.base, cfg.max_seq_length, enc.fingerprint), workers)
    dim = enc.dim
    if cfg.matryoshka_dims and max(cfg.matryoshka_dims) > dim:
        raise ConfigError(f"matryoshka_dims {list(cfg.matryoshka_dims)} go beyond the model's dimension {dim}")

    dev_before = _dev_metrics(model, dev, cfg)
    checks = [check_teacher(model, teacher, dev, cfg, on="dev" if lf is None or lf.dev is not None else "pseudo-queries")]
    if lf is not None and lf.dev is not None:
        checks.append(check_teacher(model, teacher, lf.pseudo_dev, cfg, on="pseudo-queries"))
    checks = [c for c in checks if c is not None]
    mined: Candidates = {}
    if lf is not None:
        from tamis.training._label_free import label_free_examples

        ds, n_examples = label_free_examples(miner, lf, teacher, cfg)
    else:
        if cfg.method in ("contrastive", "distill", "contrastive+distill"):
            mined = mine_candidates(
                miner, td, depth=cfg.mining_depth, batch_size=cfg.encode_batch_size,
                cache_folder=cache / "embeddings" / enc.fingerprint,
            )
        ds, n_examples = examples(td, mined, teacher, cfg)
    loss = student_loss(model, cfg)

    if cfg.lora:
        _add_lora(model, cfg)
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    key = {
        "kind": "bi-encoder", "config": cfg.to_dict(), "data": td.fingerprint(), "base": enc.fingerprint,
        "teacher": teacher.fingerprint if teacher else None,
    }
    work = work_dir(out, key)
    state, resume = fit(
        SentenceTransformerTrainer, SentenceTransformerTrainingArguments, cfg, model=model, dataset=ds, loss=loss,
        work=work, device=device, n_examples=n_examples, batch_sampler=batch_sampler(cfg, no_duplicates=True),
    )
    if cfg.lora:
        model[0].model = model[0].model.merge_and_unload()
    model.eval()
    dev_after = _dev_metrics(model, dev, cfg)
    check_results = [c.add_student(model, cfg.encode_batch_size) for c in checks]

    result = TrainResult(
        path=out, kind="bi-encoder", method=cfg.method, examples=n_examples, steps=int(state.global_step),
        seconds=0.0, dev_before=dev_before, dev_after=dev_after, resumed_from=resume,
        teacher_pairs_computed=teacher.computed if teacher else 0,
        teacher_pairs_reused=teacher.reused if teacher else 0,
        teacher_check=check_results[0] if check_results else None, teacher_checks=check_results,
    )

    def meta() -> dict[str, Any]:
        result.seconds = time.perf_counter() - t0
        dev_size = None if dev is None else {
            "queries": min(len(dev.positives()), cfg.dev_queries or len(dev.positives())),
            "documents": min(len(dev.corpus), cfg.dev_documents or len(dev.corpus)), "split": dev.split,
        }
        extra = {} if lf is None else {"pseudo_queries": cfg.pseudo_queries, "train_queries": len(td.queries)}
        return model_meta(
            "bi-encoder", cfg.method, cfg, td, result, data={"dev": dev_size, **extra},
            teacher=None if teacher is None else teacher.describe(),
            loss=type(loss).__name__ if not isinstance(loss, dict) else {k: type(v).__name__ for k, v in loss.items()},
        )

    save_model_folder(out, work, model.save, meta)
    return result


def _dev_metrics(model: Any, dev: TrainingData | None, cfg: TrainConfig) -> dict[str, float]:
    """``model``'s dev metrics (exact search on a seeded sample, see `tamis.evaluation.evaluate_model`); {} without dev."""
    if dev is None:
        return {}
    from tamis.evaluation import evaluate_model

    with eval_mode(model):
        return evaluate_model(
            model, dev, max_queries=cfg.dev_queries or None, max_documents=cfg.dev_documents,
            seed=cfg.seed, batch_size=cfg.encode_batch_size, progress=cfg.progress,
        )


def _add_lora(model: Any, cfg: TrainConfig) -> None:
    """Wrap ``model``'s transformer in a LoRA adapter (merged back after training)."""
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError as exc:  # pragma: no cover - part of the train extra
        raise ImportError('LoRA needs peft: pip install "tamis[train]"') from exc
    lcfg = LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout, inference_mode=False,
    )
    model[0].model = get_peft_model(model[0].model, lcfg)
