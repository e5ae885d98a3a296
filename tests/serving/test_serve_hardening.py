"""Hardening of `tamis serve`, tested with raw sockets and real requests: header and body read
timeouts, many idle connections, the concurrency and queue limits (429), JSON depth, numeric
ranges, error bodies without paths, an empty API key refused, /metrics."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

import tamis
from tamis import FakeEncoder
from tamis._errors import ConfigError
from tamis.serving import ServerThread, create_app


@pytest.fixture
def fast_timeouts() -> Iterator[tuple[str, int]]:
    app = create_app(FakeEncoder(dim=8), body_timeout_s=1.0)
    with ServerThread(app, header_timeout_s=1.0) as url:
        yield url, int(url.rsplit(":", 1)[1])


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """(everything the server sent, seconds until it closed the connection)."""
    sock.settimeout(seconds)
    t0, data = time.monotonic(), b""
    while True:
        chunk = sock.recv(65536)  # raises socket.timeout if the server holds the connection open
        if not chunk:
            return data, time.monotonic() - t0
        data += chunk


def test_half_sent_headers_are_dropped_within_the_timeout(fast_timeouts: tuple[str, int]) -> None:
    _, port = fast_timeouts
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")  # and then nothing
        data, took = _closed_within(s, 5)
    assert data == b"" and took < 2.5
    with socket.create_connection(("127.0.0.1", port)) as s:  # a connection that never sends anything
        _, took = _closed_within(s, 5)
    assert took < 2.5


def test_a_body_shorter_than_its_content_length_gets_408(fast_timeouts: tuple[str, int]) -> None:
    _, port = fast_timeouts
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"inputs\": ")
        data, took = _closed_within(s, 5)
    assert data.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in data and took < 2.5


def test_a_keep_alive_connection_gets_the_header_timeout_again(fast_timeouts: tuple[str, int]) -> None:
    _, port = fast_timeouts
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /hea")  # the next request, half-sent
        _, took = _closed_within(s, 5)
    assert took < 2.5


def test_a_thousand_idle_connections_do_not_stop_health(fast_timeouts: tuple[str, int]) -> None:
    url, port = fast_timeouts
    idle = []
    try:
        for i in range(1000):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                s.sendall(b"GET /health HTTP/1.1\r\nHo")  # slowloris: headers never finished
            idle.append(s)
        t0 = time.monotonic()
        r = httpx.get(url + "/health", timeout=5)
        assert r.status_code == 200 and time.monotonic() - t0 < 2
        assert httpx.post(url + "/embed", json={"inputs": "still serving"}, timeout=5).status_code == 200
        time.sleep(2.0)  # past the header timeout: the server let go of every idle connection
        for s in idle[::50]:
            assert _closed_within(s, 3)[0] == b""
    finally:
        for s in idle:
            s.close()


class _Slow(FakeEncoder):
    def __init__(self, gate: threading.Event) -> None:
        super().__init__(dim=8)
        self.gate = gate

    def encode(self, texts, *, kind="document", batch_size=64):  # type: ignore[no-untyped-def]
        self.gate.wait(10)
        return super().encode(texts, kind=kind, batch_size=batch_size)


def test_responses_do_not_wait_for_delayed_acks(fast_timeouts: tuple[str, int]) -> None:
    """ServerThread's socket turns Nagle's algorithm off: a response written in two pieces (headers,
    body) used to wait ~40 ms for the client's delayed ACK, on every request."""
    url, _ = fast_timeouts
    with httpx.Client() as client:
        client.get(url + "/health")
        took = []
        for _ in range(15):
            t0 = time.perf_counter()
            assert client.post(url + "/embed", json={"inputs": "hi"}).status_code == 200
            took.append(time.perf_counter() - t0)
    assert sorted(took)[len(took) // 2] < 0.035, took


async def test_queue_limit_answers_429() -> None:
    gate = threading.Event()
    app = create_app(_Slow(gate), max_queue_size=4, max_client_batch_size=4, max_batch_size=2, max_wait_ms=0)
    with ServerThread(app) as url:
        async with httpx.AsyncClient(timeout=20) as http:
            running = asyncio.ensure_future(http.post(url + "/embed", json={"inputs": ["a", "b"]}))
            await asyncio.sleep(0.3)  # the model holds this batch
            queued = asyncio.ensure_future(http.post(url + "/embed", json={"inputs": ["c", "d", "e", "f"]}))
            await asyncio.sleep(0.3)  # four texts wait: the queue is full
            full = await http.post(url + "/embed", json={"inputs": "g"})
            metrics = (await http.get(url + "/metrics")).text
            gate.set()
            assert [r.status_code for r in await asyncio.gather(running, queued)] == [200, 200]
    assert full.status_code == 429 and full.json()["error_type"] == "Overloaded" and "queue is full" in full.text
    assert 'tamis_requests_total{route="/embed",status="429"} 1.0' in metrics
    assert 'tamis_queue_depth{batcher="document"} 4.0' in metrics


async def test_concurrency_limit_answers_429_but_not_on_health() -> None:
    gate = threading.Event()
    app = create_app(_Slow(gate), max_concurrent_requests=2, max_wait_ms=0)
    with ServerThread(app) as url:
        async with httpx.AsyncClient(timeout=20) as http:
            held = [asyncio.ensure_future(http.post(url + "/embed", json={"inputs": t})) for t in ("a", "b")]
            await asyncio.sleep(0.3)
            over = await http.post(url + "/v1/embeddings", json={"input": "c"})
            health = await http.get(url + "/health")
            metrics = (await http.get(url + "/metrics")).text
            gate.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
            after = await http.post(url + "/embed", json={"inputs": "d"})
    assert over.status_code == 429 and over.headers["retry-after"] == "1"
    assert over.json()["error"]["type"] == "rate_limit_error" and "max_concurrent_requests" in over.text
    assert health.status_code == 200 and after.status_code == 200
    assert "tamis_requests_in_flight 2.0" in metrics


def test_json_depth_numeric_ranges_and_paths(tmp_path) -> None:
    enc = FakeEncoder(dim=8)
    with tamis.open_collection("docs", path=tmp_path, encoder=enc, create=True) as col:
        col.index([tamis.Document(id="a", text="hello world")])
        with ServerThread(create_app(enc, collection=col, max_request_bytes=1_000_000)) as url:
            deep = b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
            r = httpx.post(url + "/embed", content=deep)
            assert r.status_code == 400 and "nested deeper" in r.json()["error"]
            r = httpx.post(url + "/embed", content=b'{"inputs": ' + b"[" * 40 + b'"x"' + b"]" * 40 + b"}")
            assert r.status_code == 400
            assert httpx.post(url + "/embed", content=b'{"inputs": "a", "dimensions": NaN}').status_code == 400
            for body in ({"query": "q", "k": 2**62}, {"query": "q", "k": 0}, {"query": "q", "score_threshold": 1e308},
                         {"query": "q", "min_relevance": -1}, {"query": "q", "hnsw_ef": 2**40},
                         {"query": "q", "filter": [1]}, {"vectors": [[1.0, 2.0]]}):
                r = httpx.post(url + "/search", json=body)
                assert r.status_code == 422, (body, r.text)
            for body in ({"inputs": "a", "dimensions": 2**62}, {"inputs": "a", "normalize": 1}):
                assert httpx.post(url + "/embed", json=body).status_code == 422, body
            ok = httpx.post(url + "/search", json={"vectors": enc.encode(["hello world"]).tolist(), "k": 1})
            assert ok.status_code == 200 and ok.json()[0]["hits"][0]["id"] == "a"
            col.store.close()  # a real store failure: the store is closed under the server
            r = httpx.post(url + "/search", json={"query": "hello"})
    assert r.status_code == 424 and r.json()["error_type"] == "Backend"
    assert str(tmp_path) not in r.text and "/tmp" not in r.text and "Traceback" not in r.text
    assert "closed" in r.json()["error"]


def test_an_empty_api_key_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="API key is empty"):
        create_app(FakeEncoder(dim=8), api_key="")
    with pytest.raises(ConfigError, match="API key is empty"):
        create_app(FakeEncoder(dim=8), api_key="   ")
    from typer.testing import CliRunner

    from tamis.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--api-key", "", "--model", "fake:8"])
    assert result.exit_code != 0 and "API key is empty" in result.output
    monkeypatch.setenv("TAMIS_SERVE_API_KEY", "")
    result = runner.invoke(app, ["serve", "--model", "fake:8"])
    assert result.exit_code != 0 and "API key is empty" in result.output


def test_metrics_count_routes_batches_and_tokens(minilm_url: str) -> None:
    httpx.post(minilm_url + "/embed", json={"inputs": ["one two three", "four"]})
    httpx.post(minilm_url + "/embed", json={"inputs": []})
    text = httpx.get(minilm_url + "/metrics").text
    assert 'tamis_requests_total{route="/embed",status="200"}' in text
    assert 'tamis_requests_total{route="/embed",status="400"}' in text
    assert 'tamis_batch_size_bucket{batcher="document",le="1.0"}' in text
    assert 'tamis_request_duration_seconds_count{route="/embed"}' in text
    tokens = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("tamis_input_tokens_total")]
    assert tokens and tokens[0] >= 5 + 3  # [CLS] one two three [SEP] + [CLS] four [SEP]
    assert np.isfinite(tokens[0])
