"""Many processes, one embedded collection: a third process serves it (``tamis serve -c docs``), two
others search it at once through `RemoteCollection` (``open_collection(name, server=URL)``, and
`TamisRetriever(server=...)`), with the relevance filter of its Cosine Adapter; opening it
directly while it is served fails with a message that names ``server=``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

import tamis
from tamis import Document, FakeEncoder, StoreError

VOCAB = [f"w{i}" for i in range(300)]
QUERIES = ["w1 w2 w3", "w10 w20 w30 w40", "w7"]

CLIENT = r"""
import asyncio, json, sys
import tamis
from tamis.adapters.langchain import TamisRetriever

url, queries = sys.argv[1], json.loads(sys.argv[2])
dump = lambda hits: [h.to_dict() for h in hits]
out = {}
with tamis.open_collection("docs", server=url) as col:
    out["search"] = [dump(col.search(q, k=5)) for q in queries]
    out["unfiltered"] = [dump(h) for h in col.search_batch(queries, k=5, relevance_filter=False)]
    out["min_relevance"] = [dump(col.search(q, k=5, min_relevance=0.05)) for q in queries]
    out["vectors"] = [dump(h) for h in col.search_vectors(col.encode_queries(queries), 5, relevance_filter=False)]
    out["filtered"] = dump(col.search(queries[0], k=5, filter={"n": 1}, relevance_filter=False))
retriever = TamisRetriever(collection="docs", server=url, k=5, relevance_filter=False)
out["retriever"] = [[d.id for d in retriever.invoke(q)] for q in queries]
async def many():
    return await asyncio.gather(*(retriever.ainvoke(q) for q in queries * 4))
out["ainvoke"] = [[d.id for d in docs] for docs in asyncio.run(many())]
retriever.close()
print(json.dumps(out))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A calibrated Edge collection of 50 documents (FakeEncoder) and the local results to expect."""
    rng = np.random.default_rng(0)
    docs, queries, qrels = [], {}, {}
    for i in range(50):
        words = list(rng.choice(VOCAB, 7, replace=False))
        docs.append(Document(f"d{i}", " ".join(words), metadata={"n": i % 3}))
        queries[f"q{i}"] = " ".join(words[:3] + list(rng.choice(VOCAB, 1)))
        qrels[f"q{i}"] = {f"d{i}": 1}
    home = tmp_path_factory.mktemp("served") / "edge"
    with tamis.open_collection("docs", encoder=FakeEncoder(dim=64), path=home, create=True) as col:
        col.index(docs)
        col.calibrate(queries, qrels, candidates=20, epochs=8, hidden=8, batch_queries=32)
        dump = lambda hits: [h.to_dict() for h in hits]  # noqa: E731
        expected = {
            "search": [dump(col.search(q, k=5)) for q in QUERIES],
            "unfiltered": [dump(col.search(q, k=5, relevance_filter=False)) for q in QUERIES],
            "min_relevance": [dump(col.search(q, k=5, min_relevance=0.05)) for q in QUERIES],
            "filtered": dump(col.search(QUERIES[0], k=5, filter={"n": 1}, relevance_filter=False)),
        }
    assert any(len(u) > len(s) for s, u in zip(expected["search"], expected["unfiltered"], strict=True))
    return home, expected


@pytest.mark.slow
def test_two_processes_search_one_collection_served_by_a_third(calibrated, tmp_path: Path) -> None:
    home, expected = calibrated
    port = _free_port()
    env = {**os.environ, "TAMIS_HOME": str(home)}
    env.pop("TAMIS_SERVE_API_KEY", None)
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "tamis.cli", "serve", "-c", "docs", "--model", "fake:64", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        assert _wait_healthy(url, server, 120), (tmp_path / "serve.log").read_text()
        with pytest.raises(StoreError, match=r"open in another process.*server=.*Qdrant server"):
            tamis.open_collection("docs", path=home, encoder=FakeEncoder(dim=64)).search("w1", k=1)
        clients = [subprocess.Popen([sys.executable, "-c", CLIENT, url, json.dumps(QUERIES)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outputs = [c.communicate(timeout=180) for c in clients]
        assert all(c.returncode == 0 for c in clients), [e.decode()[-2000:] for _, e in outputs]
        assert httpx.get(url + "/info").json()["tamis"]["calibrated"] is True
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    unfiltered_ids = [[h["id"] for h in hits] for hits in expected["unfiltered"]]
    for out, _ in outputs:
        got = json.loads(out)
        for key in ("search", "unfiltered", "min_relevance", "filtered"):
            assert got[key] == expected[key], key  # the same hits, scores and relevance as in-process
        assert got["vectors"] == expected["unfiltered"]
        assert got["retriever"] == unfiltered_ids and got["ainvoke"] == unfiltered_ids * 4


def test_server_option_errors(calibrated) -> None:
    from tamis import CollectionNotFoundError, ConfigError
    from tamis.serving import ServerThread, create_app

    with pytest.raises(ConfigError, match="belong"):
        tamis.open_collection("docs", server="http://127.0.0.1:1", path="/x")
    with pytest.raises(ConfigError, match="http"):
        tamis.open_collection("docs", server="127.0.0.1:8080")
    with ServerThread(create_app(FakeEncoder(dim=64))) as url:
        with pytest.raises(CollectionNotFoundError, match="serves no collection"):
            tamis.open_collection("docs", server=url)
    home, _ = calibrated
    with tamis.open_collection("docs", path=home, encoder=FakeEncoder(dim=64)) as col, ServerThread(create_app(col.encoder, collection=col)) as url:
        with tamis.open_collection("docs", server=url) as remote:
            with pytest.raises(ConfigError, match="refused the request.*'k' must be between"):
                remote.search("w1", k=10**9)
            with pytest.raises(ConfigError, match="cannot be sent"):
                remote.search("w1", rerank=True)
            assert remote.search_vector(remote.encode_queries(["w1 w2 w3"])[0], k=2, relevance_filter=False)[0].id
    with pytest.raises(StoreError, match="could not reach"):
        tamis.open_collection("docs", server=url)  # after the server stopped
