"""Teacher scoring on the Ray actor pool: the same logits as in-process, the cache shared and resumed."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")
from tamis.distributed import RayConfig, RayPairScorer  # noqa: E402
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
