"""Training losses tamis adds to sentence-transformers' (imported only when training)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, get_args

from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss, MultipleNegativesRankingLoss
from sentence_transformers.util import pairwise_cos_sim
from torch import Tensor, nn

from tamis.training._config import TeacherScores

try:
    from sentence_transformers.base.losses.merged_forward import embed_columns
except ImportError:  # pragma: no cover - older sentence-transformers

    def embed_columns(model: Any, features: Iterable[dict[str, Any]]) -> list[Tensor]:  # type: ignore[misc]
        return [model(f)["sentence_embedding"] for f in features]


__all__ = ["ListwiseDistillLoss"]


class ListwiseDistillLoss(nn.Module):
    """CADET-style listwise distillation: ``kl_weight`` x KL(teacher || student) over each candidate
    list, plus ``infonce_weight`` x InfoNCE (with ``kl_weight=1, infonce_weight=0.1``: CADET; with
    ``infonce_weight=1`` and a smaller ``kl_weight``: contrastive learning with distillation on top).

    Inputs: columns ``(query, document_1, ..., document_n)``, ``document_1`` the positive;
    label: ``n`` teacher scores (logits) per row. The teacher's scores are min-max normalised per
    list and softmaxed at ``teacher_temperature`` (``teacher_scores="raw"``: softmaxed as they are, for a
    bi-encoder teacher whose scores are cosines on the student's own scale); the student's cosine similarities at
    ``student_temperature``. The InfoNCE term (MultipleNegativesRankingLoss at scale
    1 / student_temperature) treats every other document of the batch as a negative.

    Args:
        model: the student `SentenceTransformer`.
        teacher_temperature: CADET uses 0.3.
        student_temperature: CADET uses 0.05.
        infonce_weight: CADET uses 0.1.
        kl_weight: CADET uses 1.
        infonce_scale: the InfoNCE softmax's inverse temperature (None: 1 / student_temperature).
        directions: the InfoNCE term's softmax directions (MultipleNegativesRankingLoss ``directions``).
        teacher_scores: ``"minmax"`` (CADET: each list rescaled to 0..1) or ``"raw"``.
    """

    def __init__(
        self, model: Any, *, teacher_temperature: float = 0.3, student_temperature: float = 0.05,
        infonce_weight: float = 0.1, directions: tuple[str, ...] = ("query_to_doc",), kl_weight: float = 1.0,
        infonce_scale: float | None = None, teacher_scores: str = "minmax",
    ) -> None:
        super().__init__()
        if teacher_scores not in get_args(TeacherScores):
            raise ValueError(f"teacher_scores must be one of {get_args(TeacherScores)}, got {teacher_scores!r}")
        self.teacher_scores = teacher_scores
        self.model = model
        self.teacher_temperature = teacher_temperature
        self.student_temperature = student_temperature
        self.infonce_weight = infonce_weight
        self.kl_weight = kl_weight
        self.infonce_scale = infonce_scale if infonce_scale is not None else 1.0 / student_temperature
        self.kl = DistillKLDivLoss(
            model, similarity_fct=pairwise_cos_sim, student_temperature=student_temperature,
            teacher_temperature=teacher_temperature,
        )
        self.directions = tuple(directions)
        self.infonce = MultipleNegativesRankingLoss(
            model, scale=self.infonce_scale, directions=self.directions  # type: ignore[arg-type]
        )

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        norm = self.teacher_targets(labels)
        # DistillKLDivLoss multiplies by student_temperature ** 2 (Hinton); CADET weighs the KL at 1
        kl = self.kl_weight * self.kl.compute_loss_from_embeddings(embeddings, norm) / (self.student_temperature**2)
        if self.infonce_weight == 0:
            return kl
        info = self.infonce.compute_loss_from_embeddings(embeddings, labels)
        return kl + self.infonce_weight * info

    def teacher_targets(self, labels: Tensor) -> Tensor:
        """The teacher scores the KL term softmaxes at ``teacher_temperature``: per-list 0..1 or raw."""
        if self.teacher_scores == "raw":
            return labels
        lo = labels.min(dim=1, keepdim=True).values
        hi = labels.max(dim=1, keepdim=True).values
        return (labels - lo) / (hi - lo).clamp_min(1e-6)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "teacher_temperature": self.teacher_temperature,
            "student_temperature": self.student_temperature,
            "infonce_weight": self.infonce_weight,
            "kl_weight": self.kl_weight,
            "infonce_scale": self.infonce_scale,
            "directions": list(self.directions),
            "teacher_scores": self.teacher_scores,
        }
