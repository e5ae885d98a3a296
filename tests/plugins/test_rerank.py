"""The ``rerank`` stage: a cross-encoder (built from the packaged MiniLM) re-scores, calibrated by Platt, cut at τ."""

from __future__ import annotations

import numpy as np
import pytest

from tamis import open_collection
from tamis._errors import ConfigError, ModelMismatchError
from tamis.calibration import calibrate_rerank
from tamis.data import Document
from tamis.encoders import default_model_path

TEXTS = [
    "reset your password from the account settings page",
    "the printer driver fails to install on windows",
    "a mango pie needs ripe mangoes and cream",
    "kernel panic after a driver update",
    "change the password of a linux user with passwd",
    "socket timeout errors in the network stack",
    "how to bake bread with sourdough",
    "python os.path.join joins path components",
]


@pytest.fixture(scope="module")
def reranker(tmp_path_factory):
    """A one-output CrossEncoder on the packaged MiniLM weights (seeded head), saved as a folder."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ce") / "reranker"
    CrossEncoder(str(default_model_path()), num_labels=1, device="cpu").save(str(folder))
    return folder


@pytest.fixture
def col(tmp_path):
    c = open_collection("r", create=True, model="fake:32", path=tmp_path)
    c.index([Document(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)])
    yield c
    c.close()


@pytest.mark.slow
def test_rerank_stage_rescores_calibrates_and_cuts(col, reranker):
    import torch
    from sentence_transformers import CrossEncoder

    queries = {"q0": "forgot my password", "q1": "printer driver install", "q2": "mango dessert",
               "q3": "network timeout", "q4": "join paths in python", "q5": "linux passwd"}
    qrels = {"q0": {"d0": 1, "d4": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d5": 1}, "q4": {"d7": 1}, "q5": {"d4": 1}}
    settings = calibrate_rerank(col, str(reranker), queries, qrels, top_n=6, target_recall=0.8)
    assert [s.name for s in col.stages] == ["rerank"] and 0 < settings["threshold"] < 1
    a, b = settings["platt"]
    ce = CrossEncoder(str(reranker), device="cpu")
    plain = col.search("forgot my password", k=6, rerank=False)
    hits = col.search("forgot my password", k=6, relevance_filter=False)
    logits = ce.predict([("forgot my password", h.text) for h in plain], activation_fn=torch.nn.Identity())
    want = 1 / (1 + np.exp(-(a * np.asarray(logits, dtype=np.float64) + b)))
    by_id = dict(zip([h.id for h in plain], want, strict=True))
    assert [h.id for h in hits] == sorted(by_id, key=lambda d: -by_id[d])
    assert all(h.relevance == pytest.approx(by_id[h.id], abs=1e-5) for h in hits)
    cut = col.search("forgot my password", k=6)
    assert [h.id for h in cut] == [h.id for h in hits if h.relevance >= settings["threshold"]]
    assert col.search("forgot my password", k=6, min_relevance=0.999999) == []
    with pytest.raises(ConfigError, match="query text"):
        col.search_vectors(col.encode_queries(["x"]), 3)


def test_rerank_is_bound_to_the_collection_and_the_reranker(col, reranker, tmp_path):
    from tamis.plugins.rerank import Rerank

    settings = calibrate_rerank(col, str(reranker), {"q": "password"}, {"q": {"d0": 1}}, top_n=4, save=False)
    assert Rerank.from_manifest(settings, fingerprint=col.encoder.fingerprint).top_n == 4
    with pytest.raises(ModelMismatchError, match="calibrate it again"):
        Rerank.from_manifest(settings, fingerprint="another-model")
    with pytest.raises(ModelMismatchError, match="changed"):
        Rerank.from_manifest({**settings, "model_fingerprint": "0" * 32}, fingerprint=col.encoder.fingerprint)
    with pytest.raises(ConfigError, match="top_n"):
        calibrate_rerank(col, str(reranker), {"q": "password"}, {"q": {"d0": 1}}, top_n=0)


@pytest.mark.slow
def test_rerank_through_a_remote_rerank_server_is_the_local_model(col, reranker):
    """The stage with ``model="http://..."``: `tamis serve`'s app (a real HTTP server on 127.0.0.1) serving the
    same CrossEncoder gives the same logits, so the same calibration, order and relevance."""
    import torch
    from sentence_transformers import CrossEncoder

    from tamis import FakeEncoder
    from tamis.serving import ServerThread, create_app

    queries = {"q0": "forgot my password", "q1": "printer driver install", "q2": "mango dessert", "q3": "network timeout"}
    qrels = {"q0": {"d0": 1, "d4": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d5": 1}}
    local = calibrate_rerank(col, str(reranker), queries, qrels, top_n=6, target_recall=0.8, save=False)
    want = col.search("forgot my password", k=6, rerank=False)
    with ServerThread(create_app(FakeEncoder(dim=8), reranker=CrossEncoder(str(reranker), device="cpu"))) as url:
        remote = calibrate_rerank(col, url, queries, qrels, top_n=6, target_recall=0.8)
        assert remote["platt"] == pytest.approx(local["platt"], abs=1e-4)
        assert remote["threshold"] == pytest.approx(local["threshold"], abs=1e-4)
        hits = col.search("forgot my password", k=6, relevance_filter=False)
    a, b = remote["platt"]
    ce = CrossEncoder(str(reranker), device="cpu")
    logits = np.asarray(ce.predict([("forgot my password", h.text) for h in want], activation_fn=torch.nn.Identity()), dtype=np.float64)
    by_id = dict(zip([h.id for h in want], 1 / (1 + np.exp(-(a * logits + b))), strict=True))
    assert [h.id for h in hits] == sorted(by_id, key=lambda d: -by_id[d])
    assert all(h.relevance == pytest.approx(by_id[h.id], abs=1e-4) for h in hits)
