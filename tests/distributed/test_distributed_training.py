"""Teacher scoring on the Ray actor pool: the same logits as in-process, the cache shared and resumed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
from tamis.distributed import RayConfig, RayPairScorer, RayWorkers  # noqa: E402
from tamis.training import TeacherScorer  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory):
    """A 2-layer BERT cross-encoder (random head, one output) with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from tamis import default_model_path

    folder = tmp_path_factory.mktemp("ce")
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def test_teacher_scores_on_ray_equal_the_local_ones_and_share_the_cache(ray_cluster, tmp_path, cross_encoder):
    pairs = [(f"query {i % 13}", f"document {i} about thing {i % 7}") for i in range(230)]
    local = TeacherScorer(cross_encoder, cache_dir=tmp_path / "local", device="cpu")
    want = local.logits(pairs)

    cache = tmp_path / "shared"
    first = TeacherScorer(cross_encoder, cache_dir=cache, device="cpu")
    first.chunk = 50
    first.runner = RayPairScorer(RayConfig(num_actors=2, batch_size=20))
    got = first.logits(pairs[:120])
    assert np.allclose(got, want[:120], atol=1e-5)
    assert first.computed == 120 and first._model is None  # the driver loaded no model
    # a second scorer (another process, a rerun) reads the cache and sends only the rest to the actors
    second = TeacherScorer(cross_encoder, cache_dir=cache, device="cpu")
    second.runner = first.runner
    assert np.allclose(second.logits(pairs), want, atol=1e-5)
    assert (second.reused, second.computed) == (120, 110)


# -- corpus encoding for hard-negative mining ---------------------------------------------------------
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk"))
from _train_fixtures import tiny_beir, tiny_bi_encoder, tiny_cross_encoder  # noqa: E402


def test_mining_on_ray_finds_the_in_process_negatives(ray_cluster, tmp_path):
    """The packaged MiniLM mines the same negatives, in the same order, with the corpus encoded by 2 actors;
    the embedding cache (sentence-transformers') is shared with in-process runs."""
    from tamis.data import load_training_data
    from tamis.training._data import mine_candidates
    from tamis.training._trainer import load_bi_encoder
    from tamis.training._workers import MinerRef, mining_model

    td = load_training_data(tiny_beir(tmp_path / "beir"), "train")
    enc = load_bi_encoder(None, "cpu", None)
    want = mine_candidates(enc.model, td, depth=8)
    workers = RayWorkers(RayConfig(num_actors=2, batch_size=10))
    offloaded = mining_model(enc.model, MinerRef(None, None, enc.fingerprint), workers)
    got = mine_candidates(offloaded, td, depth=8, cache_folder=tmp_path / "emb")
    assert offloaded.encoded == len(set(td.corpus.values())) == 49  # every document encoded by the actors
    assert {q: [d for d, _ in c] for q, c in got.items()} == {q: [d for d, _ in c] for q, c in want.items()}
    assert all(np.allclose([s for _, s in got[q]], [s for _, s in c], atol=1e-5) for q, c in want.items())
    again = mining_model(enc.model, MinerRef(None, None, enc.fingerprint), workers)
    assert mine_candidates(again, td, depth=8, cache_folder=tmp_path / "emb") == got and again.encoded == 0


def test_cli_train_with_ray_scores_and_mines_on_the_actors(ray_cluster, tmp_path, monkeypatch):
    """`tamis train ... --ray`: the teacher's pairs and the mining corpus go to `RayWorkers`; the teacher's
    score cache is the driver's (every pair sent is in it)."""
    from typer.testing import CliRunner

    from tamis.cli import app

    beir, base = tiny_beir(tmp_path / "beir"), tiny_bi_encoder(tmp_path / "base")
    teacher = tiny_cross_encoder(tmp_path / "teacher")
    calls = {"pairs": 0, "documents": 0}
    score_pairs, encode_documents = RayWorkers.score_pairs, RayWorkers.encode_documents

    def counted_pairs(self, source, pairs, **kw):  # a spy: the actors still do the work
        calls["pairs"] += len(pairs)
        return score_pairs(self, source, pairs, **kw)

    def counted_documents(self, model, texts, **kw):
        calls["documents"] += len(texts)
        return encode_documents(self, model, texts, **kw)

    monkeypatch.setattr(RayWorkers, "score_pairs", counted_pairs)
    monkeypatch.setattr(RayWorkers, "encode_documents", counted_documents)
    monkeypatch.setenv("TAMIS_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, [
        "train", str(beir), "--out", str(tmp_path / "m"), "--base", str(base), "--method", "distill",
        "--teacher", str(teacher), "--candidates", "4", "--max-steps", "1", "--batch-size", "4",
        "--ray", "local", "--actors", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert calls["documents"] == 49 and calls["pairs"] == out["teacher_pairs_computed"] > 0
    cached = [json.loads(line) for f in (tmp_path / "cache" / "teacher-scores").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert sum(len(rec["k"]) for rec in cached) == calls["pairs"]
