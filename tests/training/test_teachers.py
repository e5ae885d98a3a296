"""Teachers of every kind behind one interface (issue 16): cross-encoder, bi-encoder, a real
`tamis serve` /rerank on 127.0.0.1, a weighted ensemble; one score cache keyed by fingerprint."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from trainkit import FAST

from tamis import ConfigError, ModelError

PAIRS = [("which fruit is apple", "fruit apple pear"), ("which fruit is apple", "car truck bus"),
         ("storm and rain", "weather rain snow"), ("storm and rain", "piano guitar")]


def _cos(model: Path, pairs: list[tuple[str, str]]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model), device="cpu")
    q = st.encode_query([p[0] for p in pairs], normalize_embeddings=True)
    d = st.encode_document([p[1] for p in pairs], normalize_embeddings=True)
    return np.sum(q * d, axis=1)


def test_specs_name_each_kind(models: dict[str, Path], tmp_path: Path) -> None:
    from tamis.training import BiEncoderTeacher, CrossEncoderTeacher, EnsembleTeacher, load_teacher
    from tamis.training._teacher_kinds import parse_teacher_spec

    cache = tmp_path / "cache"
    assert isinstance(load_teacher(str(models["cross"]), cache_dir=cache), CrossEncoderTeacher)
    assert isinstance(load_teacher(str(models["bi"]), cache_dir=cache), BiEncoderTeacher)  # recognised by its files
    ens = load_teacher(f"2*{models['cross']},bi-encoder:{models['bi']}", cache_dir=cache)
    assert isinstance(ens, EnsembleTeacher)
    assert [round(w, 4) for w, _ in ens.members] == [0.6667, 0.3333]
    assert [t.kind for _, t in ens.members] == ["cross-encoder", "bi-encoder"]
    with pytest.raises(ModelError, match="not a cross-encoder"):  # a kind that does not fit the folder
        load_teacher(f"cross-encoder:{models['bi']}", cache_dir=cache)
    with pytest.raises(ModelError, match="not a sentence-transformers bi-encoder"):
        load_teacher(f"bi-encoder:{models['cross']}", cache_dir=cache)
    (tmp_path / "junk").mkdir()
    with pytest.raises(ModelError, match="nor a sentence-transformers bi-encoder"):
        load_teacher(str(tmp_path / "junk"), cache_dir=cache)
    with pytest.raises(ConfigError, match="http"):
        parse_teacher_spec("rerank:./folder")
    with pytest.raises(ConfigError, match="empty"):
        parse_teacher_spec(" ")
    with pytest.raises(ConfigError, match="positive"):
        EnsembleTeacher([(0.0, ens.members[0][1])])


def test_bi_encoder_teacher_scores_cosines_and_caches_them(models: dict[str, Path], tmp_path: Path) -> None:
    from tamis.training import BiEncoderTeacher

    cache = tmp_path / "cache"
    t = BiEncoderTeacher(models["bi"], cache_dir=cache, device="cpu")
    assert np.allclose(t.logits(PAIRS), _cos(models["bi"], PAIRS), atol=1e-5)
    assert t.computed == 4 and t.cache_file.name == f"{t.fingerprint}.jsonl"
    assert np.allclose(t.probabilities(PAIRS), np.clip(_cos(models["bi"], PAIRS), 0, 1), atol=1e-5)
    hot = BiEncoderTeacher(models["bi"], cache_dir=cache, device="cpu", temperature=0.05)
    assert hot.fingerprint != t.fingerprint  # the temperature changes the scores: another cache file
    assert np.allclose(hot.logits(PAIRS), t.logits(PAIRS) / 0.05, atol=1e-3)
    again = BiEncoderTeacher(models["bi"], cache_dir=cache, device="cpu")
    again.logits(PAIRS)
    assert again.computed == 0 and again.reused == 4
    # a crash mid-write: the torn line is skipped, only its pairs are scored again
    t.cache_file.write_text(t.cache_file.read_text().splitlines()[0][:40] + "\n")
    torn = BiEncoderTeacher(models["bi"], cache_dir=cache, device="cpu")
    assert np.allclose(torn.logits(PAIRS), t.logits(PAIRS)) and torn.computed == 4


def test_ensemble_normalises_per_query_and_shares_the_members_caches(models: dict[str, Path], tmp_path: Path) -> None:
    from tamis.training import load_teacher

    cache = tmp_path / "cache"
    cross = load_teacher(str(models["cross"]), cache_dir=cache, device="cpu")
    bi = load_teacher(str(models["bi"]), cache_dir=cache, device="cpu")
    c, b = cross.logits(PAIRS), bi.logits(PAIRS)
    ens = load_teacher(f"0.75*{models['cross']},0.25*{models['bi']}", cache_dir=cache, device="cpu")
    got = ens.logits(PAIRS)
    assert ens.computed == 0 and ens.reused == 8  # both members answered from the single teachers' caches

    def z(v: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / v.std()

    want = np.concatenate([0.75 * z(c[:2]) + 0.25 * z(b[:2]), 0.75 * z(c[2:]) + 0.25 * z(b[2:])])
    assert np.allclose(got, want)
    assert np.allclose(ens.probabilities(PAIRS), 0.75 * cross.probabilities(PAIRS) + 0.25 * bi.probabilities(PAIRS))
    files = sorted(p.stem for p in (cache / "teacher-scores").glob("*.jsonl"))
    assert files == sorted([cross.fingerprint, bi.fingerprint])  # one file per scoring model, whatever the kind
    assert ens.fingerprint not in files and ens.describe()["members"][0]["kind"] == "cross-encoder"


def test_rerank_teacher_against_a_real_tamis_serve(models: dict[str, Path], tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    from tamis import FakeEncoder
    from tamis.serving import ServerThread, create_app
    from tamis.training import CrossEncoderTeacher, RerankTeacher, load_teacher

    local = CrossEncoderTeacher(models["cross"], cache_dir=tmp_path / "local", device="cpu").logits(PAIRS)
    ce = CrossEncoder(str(models["cross"]), device="cpu")
    ce._tamis_name = str(models["cross"])
    cache = tmp_path / "cache"
    with ServerThread(create_app(FakeEncoder(dim=8), reranker=ce, max_client_batch_size=2)) as url:
        teacher = load_teacher(url, cache_dir=cache)
        assert isinstance(teacher, RerankTeacher) and teacher.kind == "rerank"
        assert np.allclose(teacher.logits(PAIRS), local, atol=1e-5)  # raw scores, in input order
        assert teacher.computed == 4
        again = RerankTeacher(url + "/", cache_dir=cache)
        assert again.fingerprint == teacher.fingerprint
        again.logits(PAIRS)
        assert again.computed == 0 and again.reused == 4
    with ServerThread(create_app(FakeEncoder(dim=8), reranker=CrossEncoder(str(models["cross"]), device="cpu"))) as other:
        assert RerankTeacher(other, cache_dir=cache).fingerprint != teacher.fingerprint


def test_distill_with_each_kind_checks_the_teacher_first(
    models: dict[str, Path], beir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sentence_transformers import CrossEncoder

    from tamis import FakeEncoder
    from tamis.serving import ServerThread, create_app
    from tamis.training import train_bi_encoder

    opts = dict(method="distill", base=str(models["student"]), candidates=4, mining_depth=8, max_steps=2,
                cache_dir=str(tmp_path / "cache"), **FAST)
    with ServerThread(create_app(FakeEncoder(dim=8), reranker=CrossEncoder(str(models["cross"]), device="cpu"))) as url:
        specs = {"bi-encoder": str(models["bi"]), "rerank": url,
                 "ensemble": f"0.5*{models['cross']},0.5*bi-encoder:{models['bi']}"}
        for kind, spec in specs.items():
            out = tmp_path / kind
            with caplog.at_level(logging.WARNING, logger="tamis"):
                r = train_bi_encoder(beir, out, teacher=spec, **opts)
            assert r.steps == 2 and r.teacher_check is not None
            chk = r.teacher_check
            assert chk["teacher_kind"] == kind and chk["on"] == "dev"
            assert {"base_ndcg@10", "teacher_ndcg@10", "student_ndcg@10"} <= set(chk)
            if chk["teacher_ndcg@10"] < chk["base_ndcg@10"]:
                assert f"({kind}) re-ranks the base model's top 20 worse" in caplog.text
            card = (out / "README.md").read_text()
            assert f"teacher kind {kind}" in card and "the trained student" in card
            meta = json.loads((out / "tamis_model.json").read_text())
            assert meta["teacher"]["kind"] == kind


def test_the_check_warns_when_the_teacher_ranks_worse(
    models: dict[str, Path], beir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A teacher that reverses the student's own order must be flagged (every kind goes through this)."""
    from sentence_transformers import SentenceTransformer

    from tamis.data import load_training_data
    from tamis.training import TrainConfig
    from tamis.training._teacher_check import check_teacher

    st = SentenceTransformer(str(models["student"]), device="cpu")

    class Reversed:
        kind, name = "bi-encoder", "reversed"

        def logits(self, pairs: list[tuple[str, str]]) -> np.ndarray:
            return -_cos(models["student"], pairs)

    dev = load_training_data(beir, "dev")
    with caplog.at_level(logging.WARNING, logger="tamis"):
        chk = check_teacher(st, Reversed(), dev, TrainConfig(), on="dev")
    assert chk is not None and chk.result["teacher_ndcg@10"] < chk.result["base_ndcg@10"]
    assert "reversed (bi-encoder) re-ranks the base model's top 20 worse" in caplog.text
    res = chk.add_student(st, 32)
    assert res["student_ndcg@10"] == pytest.approx(res["base_ndcg@10"])  # the untrained student is the base
