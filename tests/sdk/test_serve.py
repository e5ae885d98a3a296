"""`tamis serve` on 127.0.0.1: the real packaged MiniLM through TEI / OpenAI endpoints, /search,
/rerank, dynamic batching, and the security rules (413, 401, the key never logged)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import tamis
from tamis import FakeEncoder
from tamis.adapters.remote import RemoteEncoder
from tamis.serving import ServerThread, create_app

SECRET = "tamis-serve-key-5e1f2a"
TEXTS = [
    "How do I reset my password?",
    "The cat sat on the mat.",
    "Qdrant is a vector database written in Rust.",
    "A much longer sentence about retrieval augmented generation, embeddings, batching and GPUs " * 3,
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def minilm_server(minilm) -> Iterator[tuple[str, object]]:
    app = create_app(minilm, max_batch_size=32, max_wait_ms=5)
    with ServerThread(app) as url:
        yield url, app


def test_embeddings_equal_local_encode(minilm, minilm_server) -> None:
    url, _ = minilm_server
    local = minilm.encode(TEXTS)
    with RemoteEncoder(url) as tei:
        assert tei.api == "tei" and tei.dim == 384
        assert tei.fingerprint == minilm.fingerprint  # tamis serve reports the real model fingerprint
        assert tei.max_seq_length == minilm.max_seq_length
        assert tei.tokenizer is not None  # a local copy of the served model: token-aware chunking
        assert cosines(tei.encode(TEXTS), local).min() >= 0.9999
        assert cosines(tei.encode(TEXTS, kind="query"), minilm.encode(TEXTS, kind="query")).min() >= 0.9999
    with RemoteEncoder(url, api="openai") as oai:
        assert cosines(oai.encode(TEXTS), local).min() >= 0.9999
    raw = httpx.post(url + "/v1/embeddings", json={"input": TEXTS[0], "encoding_format": "base64"}).json()
    import base64

    vec = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert cosines(vec[None], local[:1])[0] >= 0.9999
    assert httpx.get(url + "/health").text == "ok"


async def test_concurrent_requests_are_batched(minilm, minilm_server) -> None:
    url, app = minilm_server
    enc = RemoteEncoder(url)
    before = len(app.state.batchers["document"].batch_sizes)
    out = await asyncio.gather(*(enc.aencode([t]) for t in TEXTS * 4))
    sizes = app.state.batchers["document"].batch_sizes[before:]
    assert sum(sizes) == 16 and max(sizes) > 1  # 16 requests, fewer forward passes
    assert cosines(np.vstack(out), minilm.encode(TEXTS * 4)).min() >= 0.9999
    enc.close()


def test_collection_indexed_locally_is_queried_through_serve(minilm, minilm_server) -> None:
    url, _ = minilm_server
    docs = [tamis.Document(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)]
    with tamis.open_collection("local", encoder=minilm, create=True) as col:
        col.index(docs)
        local = [h.to_dict() for h in col.search("reset password", k=2)]
    with tamis.open_collection("local", encoder_url=url) as col:  # same fingerprint: no mismatch
        remote = [h.to_dict() for h in col.search("reset password", k=2)]
    assert [h["id"] for h in remote] == [h["id"] for h in local] and remote[0]["id"] == "d0"
    assert remote[0]["score"] == pytest.approx(local[0]["score"], abs=1e-4)


def test_search_endpoint_matches_batch_search_json(minilm) -> None:
    docs = [tamis.Document(id=f"d{i}", text=t, metadata={"n": i}) for i, t in enumerate(TEXTS)]
    with tamis.open_collection("served", encoder=minilm, create=True) as col:
        col.index(docs)
        expected = [h.to_dict(with_text=False) for h in col.search("vector database", k=2)]
        with ServerThread(create_app(minilm, collection=col)) as url:
            batch = httpx.post(url + "/search", json={"queries": [{"_id": "q1", "text": "vector database"}], "k": 2}).json()
            single = httpx.post(url + "/search", json={"query": "vector database", "k": 2, "filter": {"n": 2}}).json()
            bad = httpx.post(url + "/search", json={"query": "x", "k": 0})
    assert batch == [{"query_id": "q1", "hits": expected}]
    assert single["query"] == "vector database" and [h["id"] for h in single["hits"]] == ["d2"]
    assert single["hits"][0]["text"] == TEXTS[2]
    assert bad.status_code == 422 and "k" in bad.json()["error"]


@pytest.fixture
def fake_server(caplog: pytest.LogCaptureFixture) -> Iterator[str]:
    caplog.set_level(logging.DEBUG)
    app = create_app(FakeEncoder(dim=8), api_key=SECRET, max_request_bytes=2_000, max_client_batch_size=5)
    with ServerThread(app, log_level="debug") as url:
        yield url


def test_request_over_the_size_limit_gets_413(fake_server: str) -> None:
    auth = {"Authorization": f"Bearer {SECRET}"}
    big = {"inputs": ["x" * 3_000]}
    r = httpx.post(fake_server + "/embed", json=big, headers=auth)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        body = json.dumps(big).encode()
        for i in range(0, len(body), 500):
            yield body[i : i + 500]

    r = httpx.post(fake_server + "/embed", content=chunks(), headers=auth)
    assert r.status_code == 413
    r = httpx.post(fake_server + "/embed", json={"inputs": ["a"] * 6}, headers=auth)
    assert r.status_code == 413 and "batch size 6" in r.json()["error"]
    assert httpx.post(fake_server + "/embed", json={"inputs": ["a"] * 5}, headers=auth).status_code == 200


def test_api_key_required_and_never_logged(fake_server: str, caplog: pytest.LogCaptureFixture) -> None:
    ok = httpx.post(fake_server + "/embed", json={"inputs": "hello"}, headers={"Authorization": f"Bearer {SECRET}"})
    assert ok.status_code == 200 and len(ok.json()[0]) == 8
    assert httpx.post(fake_server + "/embed", json={"inputs": "hello"}).status_code == 401
    wrong = httpx.post(fake_server + "/embed", json={"inputs": "hello"}, headers={"Authorization": "Bearer nope-123"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.get(fake_server + "/info").status_code == 401
    assert httpx.get(fake_server + "/health").status_code == 200  # for load balancers
    enc = RemoteEncoder(fake_server, api_key=SECRET)
    assert enc.encode(["a", "b"]).shape == (2, 8)
    enc.close()
    assert "401" in caplog.text or "refused" in caplog.text  # the refusals were logged ...
    assert SECRET not in caplog.text and "nope-123" not in caplog.text  # ... without any key


def test_validation_errors_have_tei_status_codes(fake_server: str) -> None:
    auth = {"Authorization": f"Bearer {SECRET}"}
    cases = [({"inputs": []}, 400, "Empty"), ({"inputs": [""]}, 400, "Empty"), ({"inputs": [1, 2]}, 422, "Validation"),
             ({"nothing": 1}, 422, "Validation"), ({"inputs": "a", "prompt_name": "weird"}, 422, "Validation"),
             ({"inputs": "a", "dimensions": 9}, 413, "Validation"), ({"inputs": "a", "dimensions": 0}, 422, "Validation"),
             ({"inputs": "a", "truncate": "yes"}, 422, "Validation")]
    for body, status, kind in cases:
        r = httpx.post(fake_server + "/embed", json=body, headers=auth)
        assert (r.status_code, r.json()["error_type"]) == (status, kind), body
    r = httpx.post(fake_server + "/embed", content=b"{not json", headers=auth)
    assert r.status_code == 400
    assert httpx.post(fake_server + "/rerank", json={"query": "q", "texts": ["a"]}, headers=auth).status_code == 424
    assert httpx.post(fake_server + "/search", json={"query": "q"}, headers=auth).status_code == 424


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT cross-encoder with MiniLM's tokenizer (none is packaged)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(tamis.default_model_path()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=1)
    folder = tmp_path_factory.mktemp("tiny-ce")
    BertForSequenceClassification(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_rerank_with_a_cross_encoder(tiny_cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    query, texts = "reset password", TEXTS[:3]
    import torch

    raw = ce.predict([(query, t) for t in texts], activation_fn=torch.nn.Identity())
    with ServerThread(create_app(FakeEncoder(dim=8), reranker=ce)) as url:
        out = httpx.post(url + "/rerank", json={"query": query, "texts": texts, "raw_scores": True, "return_text": True}).json()
        with RemoteEncoder(url) as enc:
            probs = enc.rerank(query, texts)
    assert [o["index"] for o in out] == list(np.argsort(-raw))
    assert [o["score"] for o in out] == pytest.approx(sorted(raw.tolist(), reverse=True), abs=1e-5)
    assert out[0]["text"] == texts[out[0]["index"]]
    assert probs == pytest.approx((1 / (1 + np.exp(-raw))).tolist(), abs=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_cli_serve_subprocess(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "TAMIS_SERVE_API_KEY": SECRET, "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tamis.cli", "serve", "--port", str(port), "--backend", "torch", "--device", "cpu", "-v"],
            stdout=sink, stderr=subprocess.STDOUT, env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "tamis serve did not start"
                time.sleep(0.3)
            assert httpx.post(url + "/embed", json={"inputs": "hi"}).status_code == 401
            with RemoteEncoder(url, api_key=SECRET) as enc:
                assert enc.encode(["hello world"]).shape == (1, 384)
                assert enc.name == "all-MiniLM-L6-v2"
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert "serving" in text and "POST /embed" in text  # access log on with -v
    assert SECRET not in text


def test_missing_serve_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(ImportError, match=r'pip install "tamis\[serve\]"'):
        create_app(FakeEncoder(dim=8))
