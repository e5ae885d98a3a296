"""The real clients, unchanged, against `tamis serve` on 127.0.0.1: huggingface_hub's
InferenceClient (TEI), the official openai client, and langchain_openai.OpenAIEmbeddings."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = ["How do I reset my password?", "Qdrant is a vector database written in Rust.",
         "The cat sat on the mat."]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_huggingface_inference_client_feature_extraction(minilm, minilm_url: str, monkeypatch) -> None:
    from huggingface_hub import InferenceClient, constants

    # HF_HUB_OFFLINE=1 (no hub in tests) blocks every request of the client, 127.0.0.1 too;
    # the client talks to nothing but the URL it is given, so lift it for this test only
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    client = InferenceClient(model=minilm_url)  # posts to "/" as TEI serves it
    local = minilm.encode(TEXTS)
    one = client.feature_extraction(TEXTS[0])
    assert one.shape == (1, 384) and np.allclose(one[0], local[0], atol=1e-5)
    many = client.feature_extraction(TEXTS, normalize=True, truncate=True, truncation_direction="right")
    assert np.allclose(many, local, atol=1e-5)
    # MiniLM's own pipeline ends in Normalize: its unnormalised output is unit-length as well
    raw = client.feature_extraction(TEXTS[1], normalize=False)
    assert np.allclose(raw[0], local[1], atol=1e-5)
    query = client.feature_extraction(TEXTS[0], prompt_name="query")
    assert np.allclose(query[0], minilm.encode(TEXTS[:1], kind="query")[0], atol=1e-5)
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as err:
        client.feature_extraction("word " * 600, truncate=False)  # TEI refuses an over-long input
    assert err.value.response.status_code == 413 and "less than 256 tokens" in err.value.response.text


def test_tei_dimensions_truncation_tokenize_decode(minilm, minilm_url: str) -> None:
    import httpx

    local = minilm.encode(TEXTS)
    short = np.array(httpx.post(minilm_url + "/embed", json={"inputs": TEXTS, "dimensions": 128}).json())
    assert short.shape == (3, 128) and np.allclose(short, _unit(local[:, :128]), atol=1e-5)
    raw = np.array(httpx.post(minilm_url + "/embed", json={"inputs": TEXTS, "dimensions": 128,
                                                            "normalize": False}).json())
    assert np.allclose(raw, local[:, :128], atol=1e-5)  # truncated, not renormalised
    assert httpx.post(minilm_url + "/embed", json={"inputs": "x", "dimensions": 385}).status_code == 413
    end = "Qdrant is a vector database written in Rust."
    n_end = len(minilm.tokenizer(end, add_special_tokens=False)["input_ids"])
    long = "cats " * 400 + end  # "cats" is one token
    left = httpx.post(minilm_url + "/embed", json={"inputs": long, "truncation_direction": "Left"}).json()[0]
    right = httpx.post(minilm_url + "/embed", json={"inputs": long}).json()[0]
    kept = minilm.encode(["cats " * (256 - 2 - n_end) + end])[0]  # the last 254 tokens, as TEI keeps them
    assert float(np.dot(left, kept)) > 0.9999 and float(np.dot(right, kept)) < 0.99
    toks = httpx.post(minilm_url + "/tokenize", json={"inputs": "Hello world"}).json()[0]
    assert [t["text"] for t in toks] == ["[CLS]", "Hello", "world", "[SEP]"] and toks[1]["start"] == 0  # original text
    ids = [t["id"] for t in toks]
    assert httpx.post(minilm_url + "/decode", json={"ids": ids}).json() == ["hello world"]
    assert httpx.post(minilm_url + "/decode", json={"ids": [10**9]}).status_code == 422
    info = httpx.get(minilm_url + "/info").json()
    assert info["max_concurrent_requests"] == 512 and info["max_input_length"] == 256
    assert httpx.get(minilm_url + "/").json()["model_id"] == info["model_id"]


def test_openai_client_dimensions_base64_usage_and_errors(minilm, minilm_url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=minilm_url + "/v1", api_key="unused", max_retries=0)
    local = minilm.encode(TEXTS)
    out = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)  # the client asks for base64
    got = np.array([d.embedding for d in out.data])
    assert np.allclose(got, local, atol=1e-5)
    tokens = sum(len(minilm.tokenizer(t)["input_ids"]) for t in TEXTS)
    assert out.usage.prompt_tokens == tokens == out.usage.total_tokens  # the model's tokenizer, not words
    small = client.embeddings.create(model="m", input=TEXTS, dimensions=128, encoding_format="float")
    vecs = np.array([d.embedding for d in small.data])
    assert vecs.shape == (3, 128) and np.allclose(vecs, _unit(local[:, :128]), atol=1e-5)
    ids = minilm.tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"]
    by_ids = client.embeddings.create(model="m", input=[ids])
    assert np.allclose(by_ids.data[0].embedding, local[0], atol=1e-4)
    with pytest.raises(openai.APIStatusError) as err:
        client.embeddings.create(model="m", input=TEXTS, dimensions=1000)
    assert err.value.status_code == 413 and "more than the model's 384" in err.value.message
    assert err.value.body["code"] == "validation"
    with pytest.raises(openai.BadRequestError, match="cannot be empty"):
        client.embeddings.create(model="m", input=[])
    assert [m.id for m in client.models.list().data] == [minilm.name]


def test_langchain_openai_embeddings(minilm, minilm_url: str) -> None:
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length=False: send the texts (by default it sends tiktoken ids of OpenAI's vocabulary)
    emb = OpenAIEmbeddings(model="all-MiniLM-L6-v2", base_url=minilm_url + "/v1", api_key="unused",
                           check_embedding_ctx_length=False, max_retries=0)
    docs = np.array(emb.embed_documents(TEXTS))
    assert np.allclose(docs, minilm.encode(TEXTS), atol=1e-5)
    assert np.allclose(emb.embed_query(TEXTS[0]), minilm.encode(TEXTS[:1])[0], atol=1e-5)


def test_tei_embed_all_gives_each_tokens_vector(minilm, minilm_url: str) -> None:
    """TEI's /embed_all (huggingface_hub has no method for it): one vector per token, special tokens
    included, whose masked mean is the pooled /embed vector."""
    import httpx

    from tamis import FakeEncoder
    from tamis.serving import ServerThread, create_app

    got = httpx.post(minilm_url + "/embed_all", json={"inputs": TEXTS}).json()
    pooled = np.array(httpx.post(minilm_url + "/embed", json={"inputs": TEXTS}).json())
    for text, rows, vec in zip(TEXTS, got, pooled, strict=True):
        rows = np.array(rows)
        assert rows.shape == (len(minilm.tokenizer(text)["input_ids"]), 384)
        assert float(np.dot(_unit(rows.mean(axis=0)), vec)) > 0.9999
    long = httpx.post(minilm_url + "/embed_all", json={"inputs": "cats " * 400}).json()
    assert len(long[0]) == 256  # truncated at the model's length, as TEI does
    assert httpx.post(minilm_url + "/embed_all", json={"inputs": "cats " * 400, "truncate": False}).status_code == 413
    assert httpx.post(minilm_url + "/embed_all", json={"inputs": ""}).status_code == 400
    with ServerThread(create_app(FakeEncoder(dim=8))) as url:  # no encode_tokens: said so, 424
        r = httpx.post(url + "/embed_all", json={"inputs": "hi"})
        assert r.status_code == 424 and "per-token" in r.json()["error"]
