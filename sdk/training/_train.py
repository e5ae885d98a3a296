"""Training recipes on sentence-transformers' trainers: a cross-encoder teacher (`train_reranker`)
and a bi-encoder student (`train_bi_encoder`: contrastive, distill, augmented).

tamis adds the recipes and the glue, never a training loop: mining (``mine_hard_negatives``), the
false-negative guard, teacher scores cached on disk, BM25 silver pairs, LoRA / Matryoshka
wrappers, a model card with dev metrics before and after, an output folder that appears only
when complete, and a resumable checkpoint folder next to it (JSON + safetensors only, never
unpickled: see ``tamis.training._checkpoints``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import math
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamis._errors import ConfigError, DataError, ModelError
from tamis._version import __version__
from tamis.training._checkpoints import pickle_files, safe_checkpoints
from tamis.training._config import RerankerConfig, TrainConfig, config_from
from tamis.training._data import (
    Candidates,
    TeacherScorer,
    TrainingData,
    drop_copies_of_positives,
    drop_false_negatives,
    load_training_data,
    mine_candidates,
    silver_pairs,
)

__all__ = ["MARKER", "TrainResult", "train_bi_encoder", "train_reranker"]

logger = logging.getLogger("tamis")

#: the file that makes a folder "a tamis model" (JSON: kind, method, settings, metrics)
MARKER = "tamis_model.json"


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        path: the saved model folder.
        kind: ``"bi-encoder"`` or ``"cross-encoder"``.
        method: the recipe (``contrastive``, ``distill``, ``augmented``, ``bce``, ``listwise``).
        examples: training examples (rows) built.
        steps: optimiser steps taken.
        seconds: wall time of the whole run.
        dev_before, dev_after: dev metrics of the base model and of the trained one (bi-encoders).
        teacher_pairs_computed, teacher_pairs_reused: teacher scores computed / read from the cache.
        teacher_check: dev nDCG@10 / MRR@10 of the base model's top 20 in its own order and re-ranked
            by the teacher (see ``TrainConfig.teacher_check_queries``).
        resumed_from: the checkpoint the run resumed from, if any.
    """

    path: Path
    kind: str
    method: str
    examples: int = 0
    steps: int = 0
    seconds: float = 0.0
    dev_before: dict[str, float] = field(default_factory=dict)
    dev_after: dict[str, float] = field(default_factory=dict)
    teacher_pairs_computed: int = 0
    teacher_pairs_reused: int = 0
    resumed_from: str | None = None
    teacher_check: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["path"] = str(self.path)
        return d


# -- output folders -----------------------------------------------------------------------------
def _check_output(out: Path) -> None:
    """An output folder may be absent, empty, or a tamis model (replaced); anything else is refused."""
    if not out.exists():
        if not out.parent.exists():
            raise ConfigError(f"the parent folder of --out {str(out)!r} does not exist; create it first")
        return
    if not out.is_dir():
        raise ConfigError(f"output {str(out)!r} exists and is a file; pass a new folder name")
    if any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(
            f"output folder {str(out)!r} exists and is not a tamis model (no {MARKER}); refusing to "
            "overwrite it: pass a new folder, or delete it yourself"
        )


def _publish(tmp: Path, out: Path) -> None:
    """Move the complete model ``tmp`` to ``out``; an older tamis model there is replaced."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.tamis-old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _work_dir(out: Path, key: dict[str, Any]) -> Path:
    """The checkpoint folder next to ``out``, kept across interrupted runs with the same settings.

    The Trainer writes ``checkpoints/checkpoint-<step>/`` in it as JSON + safetensors only
    (`tamis.training._checkpoints`); it is removed when the model is published.
    """
    work = out.parent / f".{out.name}.tamis-work"
    key_file = work / "run.json"
    if work.exists():
        try:
            same = json.loads(key_file.read_text(encoding="utf-8")) == key
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        key_file.write_text(json.dumps(key, sort_keys=True), encoding="utf-8")
    return work


def _last_checkpoint(work: Path) -> str | None:
    """The newest complete checkpoint in ``work`` (its ``trainer_state.json`` is written last), or None.

    Checkpoints are JSON + safetensors (`tamis.training._checkpoints`). One holding pickle files (an older
    tamis wrote ``optimizer.pt`` and the like) is never loaded: the checkpoints are removed with a
    warning and the run starts fresh.
    """
    folder = work / "checkpoints"
    ckpts = sorted(
        (p for p in folder.glob("checkpoint-*")
         if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    if not ckpts:
        return None
    found = pickle_files(ckpts[-1])
    if found:
        logger.warning(
            "checkpoint %s holds pickle files (%s), from an older tamis; tamis does not load pickles, so "
            "training starts fresh", ckpts[-1], ", ".join(found),
        )
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return str(ckpts[-1])


# -- shared trainer settings ----------------------------------------------------------------------
def _precision(cfg: Any, device: str) -> tuple[bool, bool]:
    """(bf16, fp16) for the trainer."""
    if cfg.precision == "fp32" or not device.startswith("cuda"):
        if cfg.precision in ("fp16", "bf16") and not device.startswith("cuda"):
            raise ConfigError(f"precision {cfg.precision!r} needs a CUDA device; the device is {device!r}")
        return False, False
    if cfg.precision == "bf16":
        return True, False
    if cfg.precision == "fp16":
        return False, True
    import torch

    return (True, False) if torch.cuda.is_bf16_supported() else (False, True)


def _trainer_args(cfg: Any, work: Path, device: str, n_examples: int, args_cls: type, **extra: Any) -> Any:
    from sentence_transformers.base.sampler import BatchSamplers

    from tamis.training._sampler import LengthGroupedBatchSampler

    extra.setdefault("batch_sampler", LengthGroupedBatchSampler if cfg.group_by_length else BatchSamplers.BATCH_SAMPLER)
    bf16, fp16 = _precision(cfg, device)
    steps_per_epoch = max(1, math.ceil(n_examples / cfg.batch_size))
    total = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    return args_cls(
        output_dir=str(work / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=int(cfg.warmup_ratio * total),
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bf16,
        fp16=fp16,
        use_cpu=device == "cpu",
        save_strategy="steps",
        save_steps=cfg.checkpoint_steps,
        save_total_limit=1,
        logging_steps=max(1, min(50, total // 10 or 1)),
        report_to="none",
        disable_tqdm=not cfg.progress,
        dataloader_num_workers=0,
        **extra,
    )


def _time_limit_callback(minutes: float | None) -> list[Any]:
    if minutes is None:
        return []
    from transformers import TrainerCallback

    deadline = time.monotonic() + minutes * 60

    class _StopAtDeadline(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if time.monotonic() >= deadline:
                logger.warning("training stopped at step %d: the %.1f-minute budget is spent", state.global_step, minutes)
                control.should_training_stop = True
            return control

    return [_StopAtDeadline()]


def _cache_dir(cfg: Any) -> Path:
    from tamis._settings import cache_dir

    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache_dir()


def _load_student(base: str | None, device: str, max_seq_length: int | None) -> Any:
    from tamis.encoders import BiEncoder

    enc = BiEncoder(base, device=device, dtype="float32", max_seq_length=max_seq_length)
    enc.model._tamis_name = enc.name
    return enc


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _resolve(data: str | os.PathLike[str] | TrainingData, cfg: Any) -> TrainingData:
    if isinstance(data, TrainingData):
        return data
    return load_training_data(data, "train", max_queries=cfg.max_train_queries, seed=cfg.seed)


def _dev(data: TrainingData) -> TrainingData | None:
    try:
        return load_training_data(data.root, "dev", corpus=data.corpus, queries=data.queries)
    except DataError as exc:
        # a missing dev split is fine (no dev metrics); a broken one is reported, not ignored
        if "no qrels for split" in str(exc):
            return None
        raise


# -- the teacher ----------------------------------------------------------------------------------
def train_reranker(
    data: str | os.PathLike[str] | TrainingData,
    out: str | os.PathLike[str],
    config: RerankerConfig | None = None,
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

    Example:
        >>> train_reranker("./scifact", "./teacher", epochs=1)      # doctest: +SKIP
    """
    cfg = config if config is not None else config_from(RerankerConfig, **settings)
    if config is not None and settings:
        raise ConfigError("pass config= or keyword settings, not both")
    out = Path(out).expanduser()
    _check_output(out)
    t0 = time.perf_counter()
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, ListNetLoss

    from tamis.encoders import resolve_device, resolve_model

    td = _resolve(data, cfg)
    device = resolve_device(cfg.device)
    miner = _load_student(cfg.miner, device, cfg.max_seq_length)
    mined = mine_candidates(
        miner.model, td, depth=cfg.mining_depth, batch_size=cfg.encode_batch_size,
        cache_folder=_cache_dir(cfg) / "embeddings" / miner.fingerprint,
    )
    del miner
    from datasets import Dataset

    rng = random.Random(cfg.seed)
    all_docs = list(td.corpus)
    positives = td.positives()
    def negatives(q: str, pos: set[str]) -> list[str]:
        cands = drop_copies_of_positives(mined.get(q, []), pos, td.corpus)
        window = [d for d, _ in drop_false_negatives(cands, skip_top=cfg.skip_top)]
        negs = rng.sample(window, min(cfg.num_negatives, len(window)))
        want = len(negs) + cfg.random_negatives
        while len(negs) < want and len(all_docs) > len(pos) + len(negs):
            d = rng.choice(all_docs)
            if d not in pos and d not in negs:
                negs.append(d)
        return negs

    if cfg.loss == "bce":
        rows: dict[str, list[Any]] = {"query": [], "document": [], "label": []}
        for q, pos in positives.items():
            negs = negatives(q, set(pos))
            for d, lab in [(p, 1.0) for p in pos] + [(n, 0.0) for n in negs]:
                rows["query"].append(td.queries[q])
                rows["document"].append(td.corpus[d])
                rows["label"].append(lab)
        ds = Dataset.from_dict(rows).shuffle(seed=cfg.seed)
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
    work = _work_dir(out, key)
    args = _trainer_args(cfg, work, device, len(ds), CrossEncoderTrainingArguments)
    trainer = safe_checkpoints(CrossEncoderTrainer)(
        model=model, args=args, train_dataset=ds, loss=loss, callbacks=_time_limit_callback(cfg.max_minutes)
    )
    resume = _last_checkpoint(work)
    state = trainer.train(resume_from_checkpoint=resume)
    model.model.eval()

    result = TrainResult(
        path=out, kind="cross-encoder", method=cfg.loss, examples=len(ds), steps=int(state.global_step),
        seconds=0.0, resumed_from=resume,
    )

    def meta() -> dict[str, Any]:
        result.seconds = time.perf_counter() - t0
        return {
            "kind": "cross-encoder", "method": cfg.loss, "tamis_version": __version__, "created": _now(),
            "data": {"path": str(td.root), "split": td.split, "queries": len(positives), "fingerprint": td.fingerprint()},
            "base": cfg.base or "all-MiniLM-L6-v2", "settings": cfg.to_dict(), "result": result.to_dict(),
        }

    _save_model_folder(out, work, model.save_pretrained, meta)
    return result


def _save_model_folder(out: Path, work: Path, save: Callable[[str], Any], meta: Callable[[], dict[str, Any]]) -> None:
    """``save`` the model into a temporary folder next to ``out``, add the tamis marker and the model
    card (``meta()``, called after saving), publish it as ``out``, then drop the checkpoint folder
    ``work``. On any failure the temporary folder goes and ``out`` is untouched."""
    tmp = out.parent / f".{out.name}.tamis-tmp-{uuid.uuid4().hex[:8]}"
    try:
        save(str(tmp))
        info = meta()
        (tmp / MARKER).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
        (tmp / "README.md").write_text(_card(info), encoding="utf-8")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)


# -- the student ----------------------------------------------------------------------------------
def train_bi_encoder(
    data: str | os.PathLike[str] | TrainingData,
    out: str | os.PathLike[str],
    config: TrainConfig | None = None,
    **settings: Any,
) -> TrainResult:
    """Fine-tune a sentence-transformers bi-encoder on a BEIR folder's train split.

    Methods (``TrainConfig.method``):

    * ``contrastive`` — MultipleNegativesRankingLoss (Cached with ``mini_batch_size``) on
      (query, positive, mined hard negatives); the false-negative guard drops negatives the teacher
      scores within ``false_negative_margin`` of the positive (with a teacher), or skips the top
      ``skip_top`` ranks (without one).
    * ``distill`` — the teacher scores each query's candidate list (cached on disk); the student
      learns listwise KL (CADET) or MarginMSE.
    * ``augmented`` — Augmented SBERT: BM25 pairs labelled by the teacher (silver, CoSENT loss)
      alongside the gold pairs (MultipleNegativesRankingLoss).

    The model folder appears at ``out`` only when complete, with a model card (README.md) and
    ``tamis_model.json`` holding the settings and the dev metrics before and after.

    Args:
        data: a BEIR folder (or `TrainingData` of its train split).
        out: the model folder to write (absent, empty, or an older tamis model).
        config: a `TrainConfig`; or pass its fields as keyword arguments.

    Example:
        >>> train_bi_encoder("./scifact", "./student", method="distill", teacher="./teacher")  # doctest: +SKIP
    """
    if config is not None and settings:
        raise ConfigError("pass config= or keyword settings, not both")
    cfg = config if config is not None else config_from(TrainConfig, **settings)
    out = Path(out).expanduser()
    _check_output(out)
    t0 = time.perf_counter()
    from tamis.encoders import resolve_device

    device = resolve_device(cfg.device)
    cache = _cache_dir(cfg)
    teacher = None
    if cfg.teacher:
        teacher = TeacherScorer(
            cfg.teacher, cache_dir=cache, device=device, batch_size=cfg.encode_batch_size,
            max_seq_length=cfg.max_seq_length, progress=cfg.progress,
        )
    td = _resolve(data, cfg)
    dev = _dev(td) if cfg.dev_queries != 0 else None

    import torch

    torch.manual_seed(cfg.seed)
    enc = _load_student(cfg.base, device, cfg.max_seq_length)
    model = enc.model
    dim = enc.dim
    if cfg.matryoshka_dims and max(cfg.matryoshka_dims) > dim:
        raise ConfigError(f"matryoshka_dims {list(cfg.matryoshka_dims)} go beyond the model's dimension {dim}")

    dev_before = _dev_metrics(model, dev, cfg)
    teacher_check = _teacher_check(model, teacher, dev, cfg)
    mined: Candidates = {}
    if cfg.method in ("contrastive", "distill"):
        mined = mine_candidates(
            model, td, depth=cfg.mining_depth, batch_size=cfg.encode_batch_size,
            cache_folder=cache / "embeddings" / enc.fingerprint,
        )
    builder = {"contrastive": _contrastive_data, "distill": _distill_data, "augmented": _augmented_data}[cfg.method]
    ds, n_examples = builder(td, mined, teacher, cfg)
    loss = _student_loss(model, cfg)

    if cfg.lora:
        _add_lora(model, cfg)
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    from tamis.training._sampler import LengthGroupedBatchSampler

    key = {
        "kind": "bi-encoder", "config": cfg.to_dict(), "data": td.fingerprint(), "base": enc.fingerprint,
        "teacher": teacher.fingerprint if teacher else None,
    }
    work = _work_dir(out, key)
    sampler = (functools.partial(LengthGroupedBatchSampler, no_duplicates=True) if cfg.group_by_length
               else BatchSamplers.NO_DUPLICATES)
    args = _trainer_args(cfg, work, device, n_examples, SentenceTransformerTrainingArguments, batch_sampler=sampler)
    trainer = safe_checkpoints(SentenceTransformerTrainer)(
        model=model, args=args, train_dataset=ds, loss=loss, callbacks=_time_limit_callback(cfg.max_minutes)
    )
    resume = _last_checkpoint(work)
    state = trainer.train(resume_from_checkpoint=resume)
    if cfg.lora:
        model[0].model = model[0].model.merge_and_unload()
    model.eval()
    dev_after = _dev_metrics(model, dev, cfg)

    result = TrainResult(
        path=out, kind="bi-encoder", method=cfg.method, examples=n_examples, steps=int(state.global_step),
        seconds=0.0, dev_before=dev_before, dev_after=dev_after, resumed_from=resume,
        teacher_pairs_computed=teacher.computed if teacher else 0,
        teacher_pairs_reused=teacher.reused if teacher else 0, teacher_check=teacher_check,
    )

    def meta() -> dict[str, Any]:
        result.seconds = time.perf_counter() - t0
        return {
            "kind": "bi-encoder", "method": cfg.method, "tamis_version": __version__, "created": _now(),
            "data": {
                "path": str(td.root), "split": td.split, "queries": len(td.positives()),
                "fingerprint": td.fingerprint(),
                "dev": None if dev is None else {
                    "queries": min(len(dev.positives()), cfg.dev_queries or len(dev.positives())),
                    "documents": min(len(dev.corpus), cfg.dev_documents or len(dev.corpus)),
                },
            },
            "base": cfg.base or "all-MiniLM-L6-v2", "teacher": cfg.teacher,
            "loss": type(loss).__name__ if not isinstance(loss, dict) else {k: type(v).__name__ for k, v in loss.items()},
            "settings": cfg.to_dict(), "result": result.to_dict(),
        }

    _save_model_folder(out, work, model.save, meta)
    return result


def _dev_metrics(model: Any, dev: TrainingData | None, cfg: TrainConfig) -> dict[str, float]:
    if dev is None:
        return {}
    from tamis.evaluation import evaluate_model

    was_training = model.training
    model.eval()
    try:
        return evaluate_model(
            model, dev, max_queries=cfg.dev_queries or None, max_documents=cfg.dev_documents,
            seed=cfg.seed, batch_size=cfg.encode_batch_size, progress=cfg.progress,
        )
    finally:
        model.train(was_training)


def _teacher_check(model: Any, teacher: TeacherScorer | None, dev: TrainingData | None, cfg: TrainConfig) -> dict[str, float] | None:
    """Is the teacher worth learning from? Compare its re-ranking of the base model's dev top 20
    with the base order; warn when it is worse."""
    if teacher is None or dev is None or not cfg.teacher_check_queries:
        return None
    from tamis.evaluation import exact_search, ir_metrics, sample_split

    qrels, corpus = sample_split(dev, max_queries=cfg.teacher_check_queries, max_documents=cfg.dev_documents, seed=cfg.seed)
    was_training = model.training
    model.eval()
    try:
        run = exact_search(model, corpus, {q: dev.queries[q] for q in qrels}, k=20, batch_size=cfg.encode_batch_size)
    finally:
        model.train(was_training)
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


def _pad_negatives(negs: list[str], n: int, exclude: set[str], docs: list[str], rng: random.Random) -> list[str]:
    """``negs`` topped up with random documents to ``n`` (so every row has the same columns)."""
    negs = list(negs[:n])
    tries = 0
    while len(negs) < n and tries < 100 * n:
        tries += 1
        d = rng.choice(docs)
        if d not in exclude and d not in negs:
            negs.append(d)
    if len(negs) < n:
        raise DataError(f"the corpus is too small to find {n} negatives per query; lower num_negatives")
    return negs


def _contrastive_data(td: TrainingData, mined: Candidates, teacher: TeacherScorer | None, cfg: TrainConfig) -> tuple[Any, int]:
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
            negs = _pad_negatives([d for d, _ in kept], cfg.num_negatives, set(pos), docs, rng)
            cols["anchor"].append(td.queries[q])
            cols["positive"].append(td.corpus[p])
            for i, d in enumerate(negs):
                cols[f"negative_{i + 1}"].append(td.corpus[d])
    if teacher is not None:
        logger.info("false-negative guard: dropped %d candidate negatives the teacher rates near the positive", dropped)
    ds = Dataset.from_dict(cols).shuffle(seed=cfg.seed)
    return ds, len(ds)


def _distill_data(td: TrainingData, mined: Candidates, teacher: TeacherScorer | None, cfg: TrainConfig) -> tuple[Any, int]:
    from datasets import Dataset

    assert teacher is not None
    rng = random.Random(cfg.seed)
    docs = list(td.corpus)
    n_neg = cfg.candidates - 1
    lists: list[tuple[str, list[str]]] = []
    for q, pos in td.positives().items():
        for p in pos:
            cands = drop_copies_of_positives(mined.get(q, []), pos, td.corpus)
            negs = _pad_negatives([d for d, _ in cands], n_neg, set(pos), docs, rng)
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


def _silver_pool(td: TrainingData) -> list[str]:
    """Queries that may get silver pairs: any query not judged in another split (no test leakage)."""
    held_out: set[str] = set()
    for f in (td.root / "qrels").glob("*.tsv"):
        if f.stem != td.split:
            with open(f, encoding="utf-8") as fh:
                held_out.update(line.split("\t", 1)[0] for line in fh)
    return sorted(q for q in td.queries if q not in held_out)


def _augmented_data(td: TrainingData, mined: Candidates, teacher: TeacherScorer | None, cfg: TrainConfig) -> tuple[Any, int]:
    from datasets import Dataset, DatasetDict

    assert teacher is not None
    positives = td.positives()
    gold = {"anchor": [], "positive": []}
    for q, pos in positives.items():
        for p in pos:
            gold["anchor"].append(td.queries[q])
            gold["positive"].append(td.corpus[p])
    pool = _silver_pool(td)
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


def _student_loss(model: Any, cfg: TrainConfig) -> Any:
    from sentence_transformers.sentence_transformer import losses

    def mnrl() -> Any:
        kw = {"scale": cfg.scale, "directions": tuple(cfg.directions)}
        if cfg.mini_batch_size:
            return losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=cfg.mini_batch_size, **kw)
        return losses.MultipleNegativesRankingLoss(model, **kw)

    if cfg.method == "contrastive":
        loss: Any = mnrl()
    elif cfg.method == "distill":
        if cfg.distill_loss == "margin_mse":
            from sentence_transformers.util import pairwise_cos_sim

            loss = losses.MarginMSELoss(model, similarity_fct=pairwise_cos_sim)
        else:
            from tamis.training._losses import ListwiseDistillLoss

            loss = ListwiseDistillLoss(
                model, teacher_temperature=cfg.teacher_temperature, student_temperature=cfg.student_temperature,
                infonce_weight=cfg.infonce_weight, directions=tuple(cfg.directions),
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


def _add_lora(model: Any, cfg: TrainConfig) -> None:
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError as exc:  # pragma: no cover - part of the train extra
        raise ImportError('LoRA needs peft: pip install "tamis[train]"') from exc
    lcfg = LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout, inference_mode=False,
    )
    model[0].model = get_peft_model(model[0].model, lcfg)


# -- model card -----------------------------------------------------------------------------------
def _card(meta: dict[str, Any]) -> str:
    res = meta["result"]
    lines = [
        "---",
        "library_name: sentence-transformers",
        f"tags: [tamis, {meta['kind']}, {meta['method']}]",
        "---",
        "",
        f"# {meta['kind']} trained with tamis ({meta['method']})",
        "",
        f"Made by tamis {meta['tamis_version']} on {meta['created']} from **{meta['base']}**"
        + (f", teacher **{meta['teacher']}**" if meta.get("teacher") else "") + ".",
        "",
        "## Data",
        "",
        f"- BEIR folder `{meta['data']['path']}`, split `{meta['data']['split']}`: {meta['data']['queries']:,} judged queries, "
        f"{res['examples']:,} training examples (data fingerprint `{meta['data']['fingerprint']}`).",
    ]
    dev = meta["data"].get("dev")
    if dev:
        lines.append(f"- dev metrics: {dev['queries']:,} dev queries, exact search over {dev['documents']:,} documents "
                     "(the judged ones plus a seeded sample; a sample scores higher than the full corpus).")
    lines += ["", "## Training", "", f"- loss: `{meta.get('loss', meta['method'])}`",
              f"- steps: {res['steps']:,}, wall time {res['seconds'] / 60:.1f} min"
              + (f", resumed from `{Path(res['resumed_from']).name}`" if res.get("resumed_from") else "")]
    if res.get("teacher_pairs_computed") or res.get("teacher_pairs_reused"):
        lines.append(f"- teacher scores: {res['teacher_pairs_computed']:,} computed, {res['teacher_pairs_reused']:,} from the cache")
    chk = res.get("teacher_check")
    if chk:
        verdict = "better" if chk["teacher_ndcg@10"] >= chk["base_ndcg@10"] else "WORSE"
        lines.append(
            f"- teacher check ({int(chk['queries'])} dev queries, the base model's top 20): nDCG@10 "
            f"{chk['base_ndcg@10']:.4f} in the base order, {chk['teacher_ndcg@10']:.4f} re-ranked by the teacher ({verdict})"
        )
    lines += ["", "Settings:", "", "```json", json.dumps(meta["settings"], indent=2, default=str), "```"]
    if res.get("dev_before") or res.get("dev_after"):
        lines += ["", "## Dev metrics", "", "| metric | before | after |", "|---|---|---|"]
        for k in res.get("dev_after") or res.get("dev_before"):
            if k == "queries":
                continue
            b = res.get("dev_before", {}).get(k)
            a = res.get("dev_after", {}).get(k)
            lines.append(f"| {k} | {'' if b is None else f'{b:.4f}'} | {'' if a is None else f'{a:.4f}'} |")
    lines += ["", "## Use", "", "```python"]
    if meta["kind"] == "bi-encoder":
        lines += ["from sentence_transformers import SentenceTransformer", "model = SentenceTransformer(\"path/to/this/folder\")"]
    else:
        lines += ["from sentence_transformers import CrossEncoder", "model = CrossEncoder(\"path/to/this/folder\")"]
    lines += ["```", ""]
    return "\n".join(lines)

