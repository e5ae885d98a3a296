"""Fixtures of the teacher and label-free tests: tiny models built from configs and tiny data
(seconds, offline); the builders live with the training tests' in tests/sdk/_train_fixtures.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk"))

from _train_fixtures import corpus_only, tiny_beir, tiny_bi_encoder, tiny_cross_encoder  # noqa: E402
from trainkit import FAST  # noqa: E402,F401


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny bi-encoders (student and teacher: different seeds) and a tiny cross-encoder."""
    root = tmp_path_factory.mktemp("teacher-models")
    student = tiny_bi_encoder(root / "student")
    bi = tiny_bi_encoder(root / "bi", seed=7)
    return {"student": student, "bi": bi, "cross": tiny_cross_encoder(root / "cross")}


@pytest.fixture(scope="session")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_beir(tmp_path_factory.mktemp("teacher-data") / "beir")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corpus_only(tmp_path_factory.mktemp("corpus") / "corpus")
