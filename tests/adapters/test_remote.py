"""RemoteEncoder against real HTTP servers on 127.0.0.1 that misbehave on purpose.

Each server speaks TEI (``GET /info``, ``POST /embed``) and answers with `FakeEncoder` vectors,
unless its script says to fail: 429, 413 above a size, 503, hang, or drop the connection
half-way through the response.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

import tamis
from tamis import FakeEncoder, RemoteInferenceError
from tamis.adapters.remote import RemoteEncoder

DIM = 16
FAKE = FakeEncoder(dim=DIM, name="fake-remote")
SECRET = "sk-test-9f8e7d6c5b4a"

# a script gets (call number of /embed starting at 1, texts) and returns None (answer normally),
# or (status, headers), "hang", "drop"
Script = Callable[[int, list[str]], Any]


class FaultServer:
    def __init__(self, script: Script | None = None, *, info: dict[str, Any] | None = None,
                 api_key: str | None = None, openai: bool = False) -> None:
        self.script = script
        self.info = {"model_id": "fake-remote", "model_sha": "abc123", "max_input_length": 128,
                     "max_client_batch_size": 1000, **(info or {})}
        self.api_key = api_key
        self.openai = openai
        self.calls: list[list[str]] = []
        self.bodies: list[int] = []
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                outer.headers.append(dict(self.headers))
                if outer.api_key and self.headers.get("Authorization") != f"Bearer {outer.api_key}":
                    self._send(401, {"error": "Unauthorized", "error_type": "Unauthorized"})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path == "/info" and not outer.openai:
                    self._send(200, outer.info)
                elif self.path == "/v1/models" and outer.openai:
                    self._send(200, {"object": "list", "data": [{"id": "fake-openai", "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if not self._authorised():
                    return
                data = json.loads(raw)
                texts = data["input"] if outer.openai else data["inputs"]
                texts = [texts] if isinstance(texts, str) else texts
                outer.calls.append(texts)
                outer.bodies.append(length)
                action = outer.script(len(outer.calls), texts) if outer.script else None
                if action == "hang":
                    outer.release.wait(10)
                    return
                if action == "drop":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"[[0.1, 0.2")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if action is not None:
                    status, headers = action
                    self._send(status, {"error": f"scripted {status}", "error_type": "Overloaded"}, headers)
                    return
                vecs = FAKE.encode(texts).tolist()
                if outer.openai:
                    self._send(200, {"object": "list", "model": "fake-openai",
                                     "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)]})
                else:
                    self._send(200, vecs)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def embed_calls(self) -> int:
        return len(self.calls)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[..., FaultServer]]:
    servers: list[FaultServer] = []

    def start(script: Script | None = None, **kwargs: Any) -> FaultServer:
        s = FaultServer(script, **kwargs).__enter__()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.__exit__()


def client(url: str, **kwargs: Any) -> RemoteEncoder:
    return RemoteEncoder(url, **{"backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0, **kwargs})


TEXTS = [f"text number {i} about apples" for i in range(10)]


def test_tei_info_identity_and_vectors(serve: Callable[..., FaultServer]) -> None:
    srv = serve()
    with client(srv.url) as enc:
        assert enc.api == "tei" and enc.name == "fake-remote" and enc.dim == DIM
        assert enc.max_seq_length == 128
        assert enc.tokenizer is None  # no local copy of "fake-remote": chunking by words
        out = enc.encode(TEXTS)
        np.testing.assert_allclose(out, FAKE.encode(TEXTS), atol=1e-6)
        assert out.dtype == np.float32
        assert enc.encode([]).shape == (0, DIM)
        # the fingerprint follows the served model: same id + sha -> same fingerprint
        assert enc.fingerprint == client(srv.url).fingerprint
    other = serve(info={"model_sha": "def456"})
    assert client(other.url).fingerprint != enc.fingerprint


def test_openai_compatible_server(serve: Callable[..., FaultServer]) -> None:
    srv = serve(openai=True)
    enc = client(srv.url + "/v1")
    assert enc.api == "openai" and enc.name == "fake-openai" and enc.dim == DIM
    np.testing.assert_allclose(enc.encode(TEXTS), FAKE.encode(TEXTS), atol=1e-6)
    assert asyncio.run(enc.aencode(TEXTS[:3])).shape == (3, DIM)
    enc.close()


def test_load_encoder_takes_a_url(serve: Callable[..., FaultServer]) -> None:
    srv = serve()
    enc = tamis.load_encoder(srv.url, timeout=3.0)
    assert isinstance(enc, RemoteEncoder) and enc.dim == DIM


def test_batches_respect_the_servers_limits(serve: Callable[..., FaultServer]) -> None:
    srv = serve(info={"max_client_batch_size": 3, "payload_limit": 400, "max_batch_tokens": 60})
    enc = client(srv.url)
    texts = [f"t{i} " + "word " * (i % 7) for i in range(25)]
    np.testing.assert_allclose(enc.encode(texts), FAKE.encode(texts), atol=1e-6)
    assert max(len(c) for c in srv.calls[1:]) <= 3  # calls[0] is the dimension probe
    assert max(srv.bodies) <= 400
    assert [t for c in srv.calls[1:] for t in c] == texts


def test_429_then_200_is_retried(serve: Callable[..., FaultServer]) -> None:
    srv = serve(lambda n, texts: (429, {"Retry-After": "0"}) if n == 2 else None)
    enc = client(srv.url)
    np.testing.assert_allclose(enc.encode(TEXTS), FAKE.encode(TEXTS), atol=1e-6)
    assert srv.embed_calls == 3  # probe, 429, retry


def test_413_halves_the_batch_and_remembers(serve: Callable[..., FaultServer]) -> None:
    srv = serve(lambda n, texts: (413, {}) if len(texts) > 3 else None)
    enc = client(srv.url)
    np.testing.assert_allclose(enc.encode(TEXTS), FAKE.encode(TEXTS), atol=1e-6)
    ok = [c for c in srv.calls if len(c) <= 3]
    assert [t for c in ok[1:] for t in c] == TEXTS
    before = srv.embed_calls
    enc.encode(TEXTS)  # learned: no more 413s
    assert all(len(c) <= 3 for c in srv.calls[before:])


def test_413_for_a_single_text_is_a_typed_error(serve: Callable[..., FaultServer]) -> None:
    srv = serve(lambda n, texts: (413, {}) if n > 1 else None)
    with pytest.raises(RemoteInferenceError, match="single text") as info:
        client(srv.url).encode(["x"])
    assert info.value.status == 413 and "scripted 413" in info.value.body


def test_503_retried_then_given_up(serve: Callable[..., FaultServer]) -> None:
    srv = serve(lambda n, texts: (503, {}) if n in (2, 3) else None)
    np.testing.assert_allclose(client(srv.url).encode(TEXTS), FAKE.encode(TEXTS), atol=1e-6)

    down = serve(lambda n, texts: (503, {}) if n > 1 else None)
    with pytest.raises(RemoteInferenceError, match="answered 503 after 3 attempt") as info:
        client(down.url, max_retries=2).encode(TEXTS)
    assert info.value.status == 503 and info.value.url.endswith("/embed")
    assert down.embed_calls == 1 + 3


def test_other_client_errors_are_not_retried(serve: Callable[..., FaultServer]) -> None:
    srv = serve(lambda n, texts: (422, {}) if n > 1 else None)
    with pytest.raises(RemoteInferenceError, match="answered 422"):
        client(srv.url).encode(TEXTS)
    assert srv.embed_calls == 2


def test_a_hanging_server_times_out(serve: Callable[..., FaultServer]) -> None:
    srv = serve(lambda n, texts: "hang" if n > 1 else None)
    enc = client(srv.url, timeout=0.3, max_retries=1)
    enc.info  # noqa: B018 - discovery answers normally
    t0 = time.perf_counter()
    with pytest.raises(RemoteInferenceError, match="ReadTimeout") as info:
        enc.encode(TEXTS)
    assert info.value.status is None
    assert time.perf_counter() - t0 < 3
    assert srv.embed_calls == 3  # probe + 2 attempts


def test_a_connection_dropped_mid_response_is_retried(serve: Callable[..., FaultServer]) -> None:
    srv = serve(lambda n, texts: "drop" if n == 2 else None)
    np.testing.assert_allclose(client(srv.url).encode(TEXTS), FAKE.encode(TEXTS), atol=1e-6)
    assert srv.embed_calls == 3

    always = serve(lambda n, texts: "drop" if n > 1 else None)
    with pytest.raises(RemoteInferenceError, match="RemoteProtocolError"):
        client(always.url, max_retries=1).encode(TEXTS)


async def test_async_recovers_from_429_503_drop(serve: Callable[..., FaultServer]) -> None:
    srv = serve(lambda n, texts: {2: (429, {}), 3: (503, {}), 4: "drop"}.get(n))
    enc = client(srv.url)
    out = await enc.aencode(TEXTS, kind="query")
    np.testing.assert_allclose(out, FAKE.encode(TEXTS), atol=1e-6)
    assert srv.embed_calls == 5
    many = await asyncio.gather(*(enc.aencode([t]) for t in TEXTS))
    np.testing.assert_allclose(np.vstack(many), FAKE.encode(TEXTS), atol=1e-6)
    enc.close()


async def test_async_gives_up_with_a_typed_error(serve: Callable[..., FaultServer]) -> None:
    srv = serve(lambda n, texts: (503, {}) if n > 1 else None)
    enc = client(srv.url, max_retries=1)
    with pytest.raises(RemoteInferenceError) as info:
        await enc.aencode(TEXTS)
    assert info.value.status == 503


def test_api_key_is_sent_and_never_shown(serve: Callable[..., FaultServer], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    srv = serve(lambda n, texts: (503, {}) if n == 2 else None, api_key=SECRET)
    enc = client(srv.url, api_key=SECRET)
    enc.encode(TEXTS)
    assert all(h.get("Authorization") == f"Bearer {SECRET}" for h in srv.headers)
    assert SECRET not in repr(enc) and SECRET not in str(vars(enc).get("_headers", ""))
    with pytest.raises(RemoteInferenceError, match="API key") as info:
        client(srv.url, api_key="wrong-key").encode(TEXTS)
    assert info.value.status == 401
    assert "wrong-key" not in str(info.value)
    assert SECRET not in caplog.text and "wrong-key" not in caplog.text
    assert "retry" in caplog.text  # the 503 was logged, without the key


def test_rerun_after_a_failing_server_indexes_nothing_twice(serve: Callable[..., FaultServer]) -> None:
    docs = [tamis.Document(id=f"d{i}", text=f"document {i} about pears and plums") for i in range(40)]
    failing = serve(lambda n, texts: (500, {}) if n > 3 else None)  # probe + 2 batches, then broken
    with tamis.open_collection("remote", encoder_url=failing.url, create=True) as col:
        col.encoder.backoff = 0.0  # type: ignore[attr-defined]
        with pytest.raises(RemoteInferenceError, match="answered 500"):
            col.index(docs, batch_size=10, encode_batch_size=10)
        assert col.count() == 20

    healthy = serve()
    with tamis.open_collection("remote", encoder_url=healthy.url) as col:
        report = col.index(docs, batch_size=10, encode_batch_size=10)
        assert (report.unchanged, report.encoded, report.points) == (20, 20, 40)
        sent = [t for c in healthy.calls[1:] for t in c]
        assert len(sent) == 20 and len(set(sent)) == 20  # only what was missing
        again = col.index(docs, batch_size=10, encode_batch_size=10)
        assert (again.unchanged, again.encoded) == (40, 0)
        assert [h.id for h in col.search("document 7 about pears", k=1)] == ["d7"]


def test_bad_arguments() -> None:
    with pytest.raises(tamis.ConfigError, match="http"):
        RemoteEncoder("localhost:8080")
    with pytest.raises(tamis.ConfigError, match="api"):
        RemoteEncoder("http://127.0.0.1:1", api="grpc")  # type: ignore[arg-type]
    with pytest.raises(tamis.ConfigError, match="model= or encoder= or encoder_url="):
        tamis.open_collection("x", model="m", encoder_url="http://127.0.0.1:1", create=True)


def test_unreachable_server_is_a_typed_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteInferenceError, match="ConnectError"):
        client(f"http://127.0.0.1:{port}", max_retries=1).encode(["x"])


def test_cli_index_and_search_with_encoder_url(serve: Callable[..., FaultServer], tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from tamis.cli import app

    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"note {i} about {w}"}) + "\n"
                            for i, w in enumerate(["cats", "stocks", "lava", "bread"] * 3)), encoding="utf-8")
    srv = serve(api_key=SECRET)
    runner = CliRunner()
    env = {"TAMIS_ENCODER_API_KEY": SECRET}
    res = runner.invoke(app, ["index", str(data), "-c", "notes", "--encoder-url", srv.url, "--json"], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["encoded"] == 12
    res = runner.invoke(app, ["search", "about lava", "-c", "notes", "--encoder-url", srv.url, "--json", "-k", "3"], env=env)
    assert res.exit_code == 0, res.output
    assert "lava" in json.loads(res.stdout)["hits"][0]["text"]
    res = runner.invoke(app, ["search", "lava", "-c", "notes", "--encoder-url", srv.url], env={"TAMIS_ENCODER_API_KEY": "bad"})
    assert res.exit_code == 2 and "RemoteInferenceError" in res.output and "401" in res.output
    assert SECRET not in res.output


def test_importing_the_client_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, tamis.adapters.remote; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
