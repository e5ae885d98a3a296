"""One bad request among many concurrent good ones fails alone: a lone surrogate is refused before
it joins a batch, and a model call that fails anyway is retried one request at a time."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np

from tamis import FakeEncoder
from tamis.serving import ServerThread, create_app

POISON = b'{"inputs": "a \\ud800 b"}'  # valid JSON, a lone surrogate: not encodable as UTF-8


async def _storm(url: str, good: list[dict], bad: dict) -> tuple[list[httpx.Response], httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as http:
        tasks = [http.post(url + "/embed", json=body) for body in good[:15]]
        tasks.append(http.post(url + "/embed", **bad))
        tasks += [http.post(url + "/embed", json=body) for body in good[15:]]
        out = await asyncio.gather(*tasks)
    return [*out[:15], *out[16:]], out[15]


async def test_a_lone_surrogate_fails_only_its_own_request(minilm, minilm_url: str) -> None:
    good = [{"inputs": [f"good request number {i}", "a second text"]} for i in range(30)]
    oks, poisoned = await _storm(minilm_url, good, {"content": POISON, "headers": {"content-type": "application/json"}})
    assert [r.status_code for r in oks] == [200] * 30
    assert poisoned.status_code == 422 and poisoned.json()["error_type"] == "Tokenizer"
    assert "inputs[0] is not valid Unicode" in poisoned.json()["error"]
    local = minilm.encode([b["inputs"][0] for b in good])
    assert np.allclose([r.json()[0] for r in oks], local, atol=1e-5)
    r = httpx.post(minilm_url + "/v1/embeddings", content=b'{"input": ["ok", "x \\udfff"]}')
    assert r.status_code == 422 and r.json()["error"]["code"] == "tokenizer"  # OpenAI-shaped


class _Fragile(FakeEncoder):
    """A model that crashes on one text that passes every check (as a real model bug would)."""

    def encode(self, texts, *, kind="document", batch_size=64):  # type: ignore[no-untyped-def]
        if any("EXPLODE" in t for t in texts):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super().encode(texts, kind=kind, batch_size=batch_size)


async def test_a_failing_model_call_is_retried_one_request_at_a_time() -> None:
    app = create_app(_Fragile(dim=8), max_batch_size=64, max_wait_ms=50)
    with ServerThread(app) as url:
        good = [{"inputs": f"text {i}"} for i in range(30)]
        oks, bad = await _storm(url, good, {"json": {"inputs": ["fine", "EXPLODE here"]}})
    assert [r.status_code for r in oks] == [200] * 30
    assert bad.status_code == 424 and bad.json()["error_type"] == "Backend"
    assert "CUDA" not in bad.text and "Traceback" not in bad.text  # the details stay in the log
    assert max(app.state.batchers["document"].batch_sizes) > 1  # the bad input did share a batch
