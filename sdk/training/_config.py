"""Typed settings of the training recipes: `TrainConfig` (bi-encoder) and `RerankerConfig` (teacher).

Every field has a docstring; choices are ``Literal`` types and are checked in ``__post_init__``,
so a wrong value fails before any model is loaded, naming the valid options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from tamis._errors import ConfigError
from tamis.training._pseudo import PseudoSource

__all__ = [
    "Direction", "DistillLoss", "Method", "Precision", "RerankerConfig", "RerankerLoss", "TrainConfig", "config_from",
    "PseudoSource", "resolve_config",
]

Method = Literal["contrastive", "distill", "contrastive+distill", "augmented"]
DistillLoss = Literal["listwise", "margin_mse"]
TeacherScores = Literal["minmax", "raw"]
RerankerLoss = Literal["bce", "listwise"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]
#: one in-batch softmax of the contrastive loss (`TrainConfig.directions`): ``query_to_doc`` (the classic
#: loss), ``doc_to_query``, ``query_to_query``, ``doc_to_doc``; ``typing.get_args(Direction)`` lists them
Direction = Literal["query_to_doc", "doc_to_query", "query_to_query", "doc_to_doc"]


def _check_choice(name: str, value: Any, kind: Any) -> None:
    options = get_args(kind)
    if value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")


def _check_positive(cfg: Any, *names: str, allow_none: bool = False, allow_zero: bool = False) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")


@dataclass(kw_only=True)
class _Common:
    base: str | None = None
    """The model to start from: a hub name or a local folder; None: the packaged all-MiniLM-L6-v2."""

    epochs: float = 1.0
    """Passes over the training examples (fractions allowed)."""

    batch_size: int = 32
    """Training examples per optimiser step."""

    learning_rate: float = 2e-5
    """Peak learning rate (linear warm-up, then linear decay)."""

    warmup_ratio: float = 0.1
    """Fraction of the steps spent warming the learning rate up."""

    seed: int = 12
    """Seed of every random choice (sampling, shuffling, initialisation of new weights)."""

    max_train_queries: int | None = None
    """Use at most this many training queries (a seeded sample); None: all of them."""

    max_steps: int | None = None
    """Stop after this many optimiser steps (overrides ``epochs``); None: no limit."""

    max_minutes: float | None = None
    """Stop training (cleanly, the model is still saved) after this many minutes; None: no limit."""

    max_seq_length: int | None = None
    """Truncate inputs to this many tokens; None: the model's own limit."""

    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""

    precision: Precision = "auto"
    """``auto``: bf16 autocast on CUDA GPUs that support it, else fp16 on CUDA, fp32 elsewhere."""

    group_by_length: bool = True
    """Batch examples of similar length together, drawn at random from pools of 50 batches: less
    padding (1.57x more steps per minute on WordNet definitions); False: plain random batches."""

    checkpoint_steps: int = 500
    """Save a resumable checkpoint every this many steps (an interrupted run resumes from it)."""

    checkpoint_minutes: float | None = 5.0
    """Also save one whenever this many minutes passed since the last (a slow run loses at most that
    much when killed); None: by steps only."""

    cache_dir: str | None = None
    """Where teacher scores and corpus embeddings are cached; None: ``$TAMIS_CACHE``."""

    encode_batch_size: int = 128
    """Texts per forward pass when encoding or scoring (not training)."""

    dev_queries: int | None = 500
    """Dev queries evaluated for the model card (before and after); 0 or None: all of them."""

    dev_documents: int | None = 10_000
    """Dev evaluation searches the judged documents plus a seeded sample up to this many; None: all."""

    progress: bool = True
    """Show progress bars."""

    def _validate_common(self) -> None:
        _check_choice("precision", self.precision, Precision)
        _check_positive(self, "epochs", "batch_size", "learning_rate", "checkpoint_steps", "encode_batch_size")
        _check_positive(self, "max_train_queries", "max_steps", "max_minutes", "max_seq_length", "checkpoint_minutes",
                        allow_none=True)
        _check_positive(self, "warmup_ratio", allow_zero=True)
        _check_positive(self, "dev_queries", "dev_documents", allow_none=True, allow_zero=True)
        if self.warmup_ratio >= 1:
            raise ConfigError(f"warmup_ratio must be below 1, got {self.warmup_ratio}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-compatible values (for the model card and the checkpoint key)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}


@dataclass(kw_only=True)
class TrainConfig(_Common):
    """How `train_bi_encoder` fine-tunes a sentence-transformers bi-encoder.

    Example:
        >>> from tamis.training import TrainConfig
        >>> cfg = TrainConfig(method="distill", teacher="./teacher", epochs=1, batch_size=32)
        >>> cfg.distill_loss
        'listwise'
    """

    method: Method = "contrastive"
    """``contrastive``: MultipleNegativesRankingLoss on gold pairs with mined hard negatives;
    ``distill``: learn the teacher's scores over candidate lists (listwise KL or MarginMSE);
    ``contrastive+distill``: both in one loss — MultipleNegativesRankingLoss on the gold pairs and
    their guarded hard negatives, plus ``distill_weight`` x the listwise KL to the teacher's scores
    of the same lists (the teacher adds to the gold pairs instead of replacing them);
    ``augmented``: Augmented SBERT, gold pairs plus BM25-sampled pairs labelled by the teacher."""

    teacher: str | None = None
    """The teacher spec (`tamis.training.load_teacher`): a cross-encoder folder or hub name (e.g. from
    `train_reranker`), ``bi-encoder:FOLDER_OR_NAME`` (a bigger embedding model; a sentence-transformers
    folder is recognised without the prefix), an ``http(s)://`` URL of a ``/rerank`` server (TEI,
    ``tamis serve --reranker``; API key from ``$TAMIS_TEACHER_API_KEY``), or a weighted ensemble
    ``0.7*A,0.3*B``. Needed by ``distill``, ``contrastive+distill`` and ``augmented``; with
    ``contrastive`` it powers the false-negative guard."""

    teacher_cosine_temperature: float = 1.0
    """A bi-encoder teacher's score is cosine / this (matters for MarginMSE; listwise KL normalises)."""

    labels: bool = True
    """False: label-free domain adaptation — ignore the qrels, make pseudo-queries from the corpus
    (``pseudo_queries``), mine candidates with the student, label them with the teacher (``distill``
    only). Dev metrics use the folder's dev qrels when it has them, else held-out pseudo-queries."""

    pseudo_queries: PseudoSource = "auto"
    """Label-free: how queries are made (see `tamis.training._pseudo`): ``auto``, ``first-sentence``,
    ``title``, ``body``, ``doc2query`` (with ``doc2query_model``), ``queries`` (queries.jsonl, unjudged)."""

    doc2query_model: str | None = None
    """Label-free, ``doc2query``: a sequence-to-sequence query generator (folder or hub name)."""

    queries_per_document: int = 3
    """Label-free, ``doc2query``: queries generated per document."""

    pseudo_dev_queries: int = 100
    """Label-free: pseudo-queries held out (at most a fifth) for the teacher check and, without dev
    qrels, for the dev metrics."""

    teacher_mining: bool = False
    """Label-free, bi-encoder teacher: also mine candidates with the teacher (its ``mining_depth``
    nearest documents, interleaved with the student's), so a pseudo-positive can be a document the
    student does not rank high yet, where a stronger embedding model's gain lies. Other kinds only
    score pairs: ConfigError."""

    distill_weight: float = 1.0
    """``contrastive+distill``: weight of the listwise KL term next to the contrastive loss (weight 1)."""

    mini_batch_size: int | None = None
    """Use CachedMultipleNegativesRankingLoss (GradCache) with this mini-batch, so ``batch_size``
    can be far larger than what fits in memory; None: the plain loss."""

    num_negatives: int = 1
    """``contrastive``: mined hard negatives per query (besides the in-batch ones)."""

    directions: tuple[Direction, ...] = ("query_to_doc", "doc_to_query", "query_to_query", "doc_to_doc")
    """Which in-batch softmaxes the MultipleNegativesRankingLoss takes (``contrastive``, the gold
    pairs of ``augmented``, the InfoNCE term of ``distill``): ``query_to_doc`` (the classic loss),
    ``doc_to_query`` (symmetric), ``query_to_query`` and ``doc_to_doc`` (other queries and other
    documents of the batch are negatives too). The default, all four in one softmax, is GTE's
    improved contrastive loss: more signal per step at no extra encoding cost (on WordNet, 30 CPU
    minutes: test nDCG@10 0.376 against 0.332 with ``query_to_doc`` alone)."""

    scale: float = 20.0
    """Inverse temperature of the contrastive softmax over cosine similarities (20 = temperature 0.05)."""

    mining_depth: int = 30
    """How many nearest documents per query the miner looks at."""

    skip_top: int = 0
    """False-negative guard without a teacher: never take negatives from the top ``skip_top`` ranks
    (they are likely unlabelled positives)."""

    false_negative_margin: float = 0.1
    """False-negative guard with a teacher: drop a candidate negative whose teacher probability is
    within this margin of (or above) the positive's."""

    candidates: int = 16
    """``distill``: documents in each candidate list (the positive plus ``candidates - 1`` mined ones)."""

    distill_loss: DistillLoss = "listwise"
    """``listwise``: KL between the teacher's and the student's softmax over the candidate list
    (CADET: teacher scores min-max normalised, temperatures below) plus ``infonce_weight`` × InfoNCE;
    ``margin_mse``: MarginMSE on the teacher's positive-negative margins."""

    teacher_temperature: float = 0.3
    """``listwise``: temperature of the teacher softmax over its scores (min-max normalised unless
    ``teacher_scores="raw"``; with raw cosines, 0.05 = the student's temperature)."""

    teacher_scores: TeacherScores = "minmax"
    """``listwise``: ``minmax`` (CADET, made for cross-encoder logits: each list's teacher scores rescaled to
    0..1 before the softmax at ``teacher_temperature``) or ``raw`` (the scores as they are: for a bi-encoder
    teacher, its cosines; with ``teacher_temperature`` = ``student_temperature`` the student learns the
    teacher's own score distribution over the list instead of a flattened 0..1 one)."""

    student_temperature: float = 0.05
    """``listwise``: temperature of the student softmax over cosine similarities."""

    infonce_weight: float = 0.1
    """``listwise``: weight of the InfoNCE (in-batch negatives) term added to the KL term."""

    silver_per_query: int = 5
    """``augmented``: BM25 top documents per query labelled by the teacher as silver pairs."""

    silver_queries: int | None = None
    """``augmented``: how many queries get silver pairs (a seeded sample of all queries in the
    data, labelled or not); None: as many as there are training queries."""

    teacher_check_queries: int = 100
    """Before training, the teacher re-ranks the base model's top 20 for this many dev queries; if
    that ranks worse than the base model's own order, a warning says distilling will likely hurt
    (the numbers go into the model card). 0: skip."""

    lora: bool = False
    """Train LoRA adapters (peft) instead of every weight; they are merged into the saved model."""

    lora_rank: int = 16
    """LoRA rank r."""

    lora_alpha: int = 32
    """LoRA scaling alpha."""

    lora_dropout: float = 0.1
    """LoRA dropout."""

    matryoshka_dims: tuple[int, ...] | None = None
    """Also train truncated embeddings of these sizes (MatryoshkaLoss), e.g. ``(384, 256, 128, 64)``;
    the largest must be the model's dimension. None: off."""

    def __post_init__(self) -> None:
        self._validate_common()
        _check_choice("method", self.method, Method)
        _check_choice("distill_loss", self.distill_loss, DistillLoss)
        _check_choice("pseudo_queries", self.pseudo_queries, PseudoSource)
        _check_choice("teacher_scores", self.teacher_scores, TeacherScores)
        _check_positive(self, "teacher_cosine_temperature", "queries_per_document")
        _check_positive(self, "distill_weight", "pseudo_dev_queries", allow_zero=True)
        if not self.labels and self.method != "distill":
            raise ConfigError(
                f"label-free training (labels=False, --no-labels) learns from the teacher alone: it needs method "
                f"'distill', got {self.method!r}"
            )
        if self.teacher_mining and self.labels:
            raise ConfigError("teacher_mining (mining candidates with a bi-encoder teacher) is for label-free runs: set labels=False")
        if self.pseudo_queries == "doc2query" and not self.doc2query_model:
            raise ConfigError("pseudo_queries='doc2query' needs doc2query_model= (--doc2query-model), a seq2seq generator")
        _check_positive(self, "num_negatives", "mining_depth", "teacher_temperature", "student_temperature",
                        "silver_per_query", "lora_rank", "lora_alpha", "scale")
        dirs = (self.directions,) if isinstance(self.directions, str) else tuple(self.directions)
        if not dirs:
            raise ConfigError(f"directions must name at least one of {', '.join(map(repr, get_args(Direction)))}")
        for d in dirs:
            _check_choice("directions", d, Direction)
        if "query_to_doc" not in dirs:
            raise ConfigError(f"directions must include 'query_to_doc' (the retrieval direction); got {list(dirs)}")
        self.directions = tuple(dict.fromkeys(dirs))
        _check_positive(self, "mini_batch_size", "silver_queries", allow_none=True)
        _check_positive(self, "skip_top", "false_negative_margin", "infonce_weight", "lora_dropout",
                        "teacher_check_queries", allow_zero=True)
        if self.candidates < 2:
            raise ConfigError(f"candidates must be at least 2 (the positive and one more), got {self.candidates}")
        if self.method in ("distill", "contrastive+distill", "augmented") and not self.teacher:
            raise ConfigError(
                f"method {self.method!r} needs a teacher: pass teacher= (--teacher), a cross-encoder or bi-encoder "
                "folder, a /rerank URL or an ensemble; train a cross-encoder with `tamis train-reranker DATA --out DIR`"
            )
        if self.matryoshka_dims is not None:
            dims = tuple(self.matryoshka_dims)
            if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
                raise ConfigError(f"matryoshka_dims must be positive integers, got {self.matryoshka_dims!r}")
            self.matryoshka_dims = tuple(sorted(set(dims), reverse=True))
        if self.method in ("distill", "contrastive+distill") and self.mining_depth < self.candidates - 1:
            raise ConfigError(
                f"mining_depth={self.mining_depth} is too small for {self.candidates} candidates per list; "
                f"raise it to at least {self.candidates - 1}"
            )
        if self.method == "contrastive" and self.mining_depth < self.num_negatives + self.skip_top:
            raise ConfigError(
                f"mining_depth={self.mining_depth} must be at least num_negatives + skip_top "
                f"({self.num_negatives} + {self.skip_top})"
            )


@dataclass(kw_only=True)
class RerankerConfig(_Common):
    """How `train_reranker` trains a cross-encoder teacher from any encoder checkpoint.

    Example:
        >>> from tamis.training import RerankerConfig
        >>> RerankerConfig(loss="listwise", num_negatives=7).loss
        'listwise'
    """

    loss: RerankerLoss = "bce"
    """``bce``: binary cross-entropy on (query, document, 0/1) pairs; ``listwise``: ListNet over the
    positive and its mined negatives."""

    miner: str | None = None
    """The bi-encoder that mines hard negatives (hub name or folder); None: the packaged all-MiniLM-L6-v2."""

    num_negatives: int = 5
    """Hard negatives per query, sampled at random from the miner's ranks ``skip_top + 1 .. mining_depth``."""

    random_negatives: int = 2
    """Negatives per query drawn at random from the corpus. A teacher shown only hard negatives can
    learn the shortcut "close to the query means irrelevant" (the positive is close too) and rank
    worse than chance; random ones teach it that unrelated documents are irrelevant first."""

    mining_depth: int = 30
    """How many nearest documents per query the miner looks at."""

    skip_top: int = 0
    """Never take negatives from the top ``skip_top`` ranks (likely unlabelled positives)."""

    learning_rate: float = 5e-5
    """Peak learning rate (a fresh classification head learns faster than a fine-tune)."""

    batch_size: int = 32
    """Examples per optimiser step (pairs for ``bce``, query lists for ``listwise``)."""

    def __post_init__(self) -> None:
        self._validate_common()
        _check_choice("loss", self.loss, RerankerLoss)
        _check_positive(self, "num_negatives", "mining_depth")
        _check_positive(self, "skip_top", "random_negatives", allow_zero=True)
        if self.mining_depth < self.num_negatives + self.skip_top:
            raise ConfigError(
                f"mining_depth={self.mining_depth} must be at least num_negatives + skip_top "
                f"({self.num_negatives} + {self.skip_top})"
            )


# a sentinel-free helper for the CLI: build from keyword arguments, dropping None for defaults
def config_from(cls: type, **kwargs: Any) -> Any:
    """``cls(**kwargs)`` without the keys whose value is None (so defaults apply): a `TrainConfig` or
    `RerankerConfig` from command-line options.

    Raises:
        ConfigError: a key that is not a field of ``cls``, or a value ``cls`` refuses.

    Example:
        >>> from tamis.training import TrainConfig, config_from
        >>> config_from(TrainConfig, epochs=2, batch_size=None).batch_size
        32
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(kwargs) - names
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)} for {cls.__name__}; valid: {sorted(names)}")
    return cls(**{k: v for k, v in kwargs.items() if v is not None})


def resolve_config(cls: type, config: Any, settings: dict[str, Any]) -> Any:
    """A training function's settings: ``config`` (a ``cls``) as given, or a ``cls`` built from the keyword
    ``settings`` (`config_from`); `ConfigError` for both."""
    if config is not None and settings:
        raise ConfigError("pass config= or keyword settings, not both")
    return config if config is not None else config_from(cls, **settings)
